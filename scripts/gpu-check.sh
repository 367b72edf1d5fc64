#!/usr/bin/env bash
# Runs the CUDA parity tests (and, with --bench, the GEMM/attention
# benchmarks) on a machine with an NVIDIA GPU and driver. Nothing is built
# here: build the test binary where the CUDA 11.8 headers are and carry it
#   make cuda-test-bin            # → bin/cuda-parity.test (needs libcuda.so.1 + a cuBLAS at run time)
# then on the GPU machine, from the repository root:
#   bash scripts/gpu-check.sh [--bench] [path/to/cuda-parity.test]
# Results go to stdout and to $OUT (default /tmp/gpu-check): parity.txt,
# bench.txt, env.txt. Exit status: the test binary's.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench=0
bin=bin/cuda-parity.test
for a in "$@"; do
	case "$a" in
	--bench) bench=1 ;;
	*) bin=$a ;;
	esac
done
case "$bin" in /*) ;; *) bin=$root/$bin ;; esac
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
if [ ! -x "$bin" ]; then
	echo "gpu-check: $bin not found; build it with make cuda-test-bin and carry it here" >&2
	exit 2
fi

{
	echo "== machine"
	uname -a
	nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi: not available"
	ls -l /dev/nvidia* 2>&1 | head -5
	ldd "$bin" 2>&1 | grep -E 'cuda|not found' || true
} | tee "$out/env.txt"

# cuBLAS is dlopen'd (libcublas.so.11/.12/.13 on the loader path, or
# MINITRON_CUBLAS). PyTorch wheels keep theirs under
# site-packages/nvidia/cublas/lib, off the loader path: find one.
if [ -z "${MINITRON_CUBLAS:-}" ] && ! ldconfig -p 2>/dev/null | grep -qE 'libcublas\.so\.1[123]'; then
	lib=""
	for py in python3 /usr/bin/python3; do
		d=$($py -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null) || continue
		lib=$(ls "$d"/libcublas.so.1[123]* 2>/dev/null | head -1)
		[ -n "$lib" ] && break
	done
	if [ -z "$lib" ]; then
		lib=$(find /usr /opt /root /home -xdev -name 'libcublas.so.1[123]*' 2>/dev/null | grep -v Lt | sort -V | tail -1)
	fi
	if [ -n "$lib" ]; then
		export MINITRON_CUBLAS=$lib
		# its libcublasLt sits beside it
		export LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	fi
fi
echo "cuBLAS: ${MINITRON_CUBLAS:-(from the loader path)}" | tee -a "$out/env.txt"

# go test runs a package's tests in its directory (the PTX checks read
# ptx/ and csrc/ relative to it).
cd "$root/model/kernels/cuda"
"$bin" -test.v -test.count=1 -test.timeout 10m 2>&1 | tee "$out/parity.txt"
rc=${PIPESTATUS[0]}
echo "== summary (exit $rc)"
grep -E '^(device:|skipped:|--- FAIL|FAIL|PASS|ok)' "$out/parity.txt" || true
echo "passed: $(grep -c -- '--- PASS' "$out/parity.txt")  failed: $(grep -c -- '--- FAIL' "$out/parity.txt")"
if [ "$bench" = 1 ] && [ "$rc" = 0 ]; then
	"$bin" -test.run '^$' -test.bench . -test.benchtime 20x 2>&1 | tee "$out/bench.txt"
fi
exit "$rc"
