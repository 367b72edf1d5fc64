#!/usr/bin/env bash
# Runs the CUDA tests on a machine with an NVIDIA GPU and driver: the kernel
# parity tests (model/kernels/cuda) and the device trainer's tests
# (model/kernels/cuda/gputrain: forward vs the CPU forward, three training
# steps vs distill.Trainer); with --bench also the GEMM, attention and
# ~100M-model training benchmarks (tokens/s, MFU). Nothing is built here:
# build the test binaries where the CUDA 11.8 headers are and carry them
#   make cuda-test-bin    # → bin/cuda-parity.test, bin/cuda-train.test (need libcuda.so.1 + a cuBLAS at run time)
# then on the GPU machine, from the repository root:
#   bash scripts/gpu-check.sh [--bench]
# Results go to stdout and to $OUT (default /tmp/gpu-check): parity.txt,
# train.txt, bench.txt, env.txt. Exit status: 0 when every test passed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench=0
for a in "$@"; do
	case "$a" in
	--bench) bench=1 ;;
	*) echo "gpu-check: unknown argument $a (want --bench)" >&2; exit 2 ;;
	esac
done
bin=$root/bin/cuda-parity.test
tbin=$root/bin/cuda-train.test
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
for b in "$bin" "$tbin"; do
	if [ ! -x "$b" ]; then
		echo "gpu-check: $b not found; build it with make cuda-test-bin and carry it here" >&2
		exit 2
	fi
done

{
	echo "== machine"
	uname -a
	nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi: not available"
	ls -l /dev/nvidia* 2>&1 | head -5
	ldd "$bin" 2>&1 | grep -E 'cuda|not found' || true
} | tee "$out/env.txt"

# cuBLAS is dlopen'd (libcublas.so.11/.12/.13 on the loader path, or
# MINITRON_CUBLAS). CUDA 13 images keep it in /usr/local/cuda/lib64 or in
# PyTorch's wheels (site-packages/nvidia/cublas/lib, nvidia/cu13/lib), off
# the loader path: find one.
if [ -z "${MINITRON_CUBLAS:-}" ] && ! ldconfig -p 2>/dev/null | grep -E 'libcublas\.so\.1[123]' >/dev/null; then
	lib=""
	dirs="/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib"
	for py in python3 /usr/bin/python3; do
		sp=$($py -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) || continue
		for d in $sp; do dirs="$dirs $(ls -d "$d"/nvidia/*/lib 2>/dev/null | tr '\n' ' ')"; done
	done
	for d in $dirs; do
		lib=$(ls "$d"/libcublas.so.1[123]* 2>/dev/null | sort -V | tail -1)
		[ -n "$lib" ] && break
	done
	if [ -z "$lib" ]; then
		lib=$(find /usr /opt /root /home -xdev -name 'libcublas.so.1[123]*' 2>/dev/null | sort -V | tail -1)
	fi
	if [ -n "$lib" ]; then
		export MINITRON_CUBLAS=$lib
		# its libcublasLt sits beside it
		export LD_LIBRARY_PATH=$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	fi
fi
echo "cuBLAS: ${MINITRON_CUBLAS:-(from the loader path)}" | tee -a "$out/env.txt"

# go test runs a package's tests in its directory (the PTX checks read
# ptx/ and csrc/ relative to it), so each binary runs in its package's.
cd "$root/model/kernels/cuda"
"$bin" -test.v -test.count=1 -test.timeout 5m 2>&1 | tee "$out/parity.txt"
rc=${PIPESTATUS[0]}
cd "$root/model/kernels/cuda/gputrain"
"$tbin" -test.v -test.count=1 -test.timeout 5m 2>&1 | tee "$out/train.txt"
trc=${PIPESTATUS[0]}
echo "== summary (kernels exit $rc, trainer exit $trc)"
for f in parity train; do
	grep -E '^(device:|skipped:|--- FAIL|FAIL|PASS|ok)' "$out/$f.txt" || true
	echo "$f: passed $(grep -c -- '--- PASS' "$out/$f.txt"), failed $(grep -c -- '--- FAIL' "$out/$f.txt")"
done
if [ "$bench" = 1 ]; then
	# benchmarks run even after a failed test: their numbers still say
	# where the time goes
	cd "$root/model/kernels/cuda"
	"$bin" -test.run '^$' -test.bench . -test.benchtime 20x 2>&1 | tee "$out/bench.txt"
	cd "$root/model/kernels/cuda/gputrain"
	"$tbin" -test.run '^$' -test.bench . -test.benchtime 5x -test.timeout 8m 2>&1 | tee -a "$out/bench.txt"
fi
[ "$rc" = 0 ] && [ "$trc" = 0 ]
