#!/usr/bin/env bash
# Runs the CUDA tests on a machine with an NVIDIA GPU and driver: the kernel
# parity tests (model/kernels/cuda), the device model's tests
# (gpu: forward and inference vs the CPU forward,
# three training steps vs distill.Trainer), and the device paths of distill
# (3-step runs vs the CPU's losses; a 1-rank run through NCCL vs the run
# without a communicator), importance (scores vs the CPU's) and
# eval (LM scores vs the CPU's); with --bench also the GEMM, attention and
# device-model benchmarks and `minitron bench train|forward --device cuda`
# (f32/TF32 and bf16, with and without --recompute, each with its measured
# device memory peak against `minitron plan`) on
# the issue's ~100M Nemotron at sequence 1024 (tokens/s, MFU). Nothing is
# built here: build the binaries where the CUDA 11.8 headers are and carry them
#   make cuda-test-bin    # → bin/cuda-*.test and bin/minitron-cuda (need libcuda.so.1 + a cuBLAS at run time)
#   make gpu-bundle       # → the same in bin/gpu-bundle.tar.xz (~42 MB), unpacked here when bin/*.test are absent
# then on the GPU machine, from the repository root:
#   bash scripts/gpu-check.sh [--bench]
# Results go to stdout and to $OUT (default /tmp/gpu-check): one .txt per
# test binary, bench.txt, env.txt. Exit status: 0 when every test passed.
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
# binary, package directory (go test runs a package's tests there: the PTX
# checks read ptx/ and csrc/ relative to it), tests to run
tests=(
	"cuda-parity model/kernels/cuda ."
	"cuda-train gpu ."
	"cuda-distill distill RunCUDA|DeviceCUDA"
	"cuda-importance importance DeviceCUDA"
	"cuda-eval eval DeviceCUDA"
	"cuda-reproduce reproduce DeviceCUDA"
	"cuda-cmd cmd/minitron DeviceCUDA"
)
# distill's RunCUDAHostMemory: the host heap of a device run at the 100M
# goal shape (opt-in on the emulator, where it takes minutes)
export MINITRON_HOSTMEM=1
bin=$root/bin/cuda-parity.test
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
# make gpu-bundle packs the binaries into one archive (a GPU machine may
# take at most 64 MB of carried files)
if [ ! -x "$root/bin/cuda-parity.test" ] && [ -f "$root/bin/gpu-bundle.tar.xz" ]; then
	tar -C "$root/bin" -xJf "$root/bin/gpu-bundle.tar.xz" || exit 2
fi
for t in "${tests[@]}"; do
	set -- $t
	if [ ! -x "$root/bin/$1.test" ]; then
		echo "gpu-check: bin/$1.test not found; build it with make cuda-test-bin and carry it here" >&2
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

# NCCL is dlopen'd too (libnccl.so.2 on the loader path, or MINITRON_NCCL);
# PyTorch's wheels keep one in site-packages/nvidia/nccl/lib. Without one
# distill's 1-rank NCCL test skips, saying so.
if [ -z "${MINITRON_NCCL:-}" ] && ! ldconfig -p 2>/dev/null | grep -E 'libnccl\.so\.2' >/dev/null; then
	lib=""
	for py in python3 /usr/bin/python3; do
		sp=$($py -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) || continue
		for d in $sp; do lib=$(ls "$d"/nvidia/nccl/lib/libnccl.so.2* 2>/dev/null | sort -V | tail -1); [ -n "$lib" ] && break 2; done
	done
	[ -z "$lib" ] && lib=$(find /usr /opt /root /home -xdev -name 'libnccl.so.2*' 2>/dev/null | sort -V | tail -1)
	[ -n "$lib" ] && export MINITRON_NCCL=$lib
fi
echo "NCCL: ${MINITRON_NCCL:-(from the loader path)}" | tee -a "$out/env.txt"

status=0
for t in "${tests[@]}"; do
	set -- $t
	cd "$root/$2"
	"$root/bin/$1.test" -test.v -test.count=1 -test.run "$3" -test.timeout 8m 2>&1 | tee "$out/$1.txt"
	rc=${PIPESTATUS[0]}
	[ "$rc" = 0 ] || status=1
	echo "$1: exit $rc" >>"$out/summary.txt"
done
cd "$root"
echo "== summary"
for t in "${tests[@]}"; do
	set -- $t
	grep -E '^(device:|skipped:|--- FAIL|FAIL|ok)' "$out/$1.txt" || true
	echo "$1: passed $(grep -c -- '--- PASS' "$out/$1.txt"), failed $(grep -c -- '--- FAIL' "$out/$1.txt"), skipped $(grep -c -- '--- SKIP' "$out/$1.txt")"
done
if [ "$bench" = 1 ]; then
	# benchmarks run even after a failed test: their numbers still say
	# where the time goes
	{
		cd "$root/model/kernels/cuda"
		"$root/bin/cuda-parity.test" -test.run '^$' -test.bench . -test.benchtime 20x
		cd "$root/gpu"
		"$root/bin/cuda-train.test" -test.run '^$' -test.bench . -test.benchtime 5x -test.timeout 8m
		cd "$root"
		# the issue's goal shape: a ~100M Nemotron at sequence 1024
		shape="--arch nemotron --layers 8 --hidden 768 --heads 12 --kv-heads 4 --ffn 3072 --vocab 32000 --seq 1024"
		if [ -x bin/minitron-cuda ]; then
			# f32/TF32 against bf16, each with and without recomputation:
			# tokens/s, MFU, and the pool's measured peak against minitron plan
			for prec in "" "--bf16"; do
				for rc in "" "--recompute"; do
					echo "== bench train $prec $rc"
					bin/minitron-cuda bench train --device cuda $shape --batch 8 $prec $rc
				done
			done
			# distillation from a same-shape teacher with chunked logits
			echo "== bench train --loss kd --bf16 --recompute --logit-chunk 2048"
			bin/minitron-cuda bench train --device cuda $shape --batch 8 --loss kd --bf16 --recompute --logit-chunk 2048
			echo "== bench train --loss kd --bf16 --recompute --offload-optimizer (AdamW on the host)"
			bin/minitron-cuda bench train --device cuda $shape --batch 8 --loss kd --bf16 --recompute --offload-optimizer
			bin/minitron-cuda bench forward --device cuda $shape --batch 8
			# what the paper's students need per 80 GB GPU (no GPU needed)
			bin/minitron-cuda plan --teacher nemotron:nemotron-4-15b --student nemotron:minitron-8b --seq-len 4096 \
				--precision bf16 --world-size 8 --zero 2 --recompute --logit-chunk 512
		fi
	} 2>&1 | tee "$out/bench.txt"
fi
exit $status
