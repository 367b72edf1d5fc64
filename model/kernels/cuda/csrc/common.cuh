// Shared helpers for minitron's CUDA kernels. Every kernel is extern "C"
// (unmangled names for cuModuleGetFunction) and takes only 8-byte-slot
// parameters: device pointers, int (low 32 bits of the slot) and float (low
// 32 bits), because gorgonia.org/cu's Launch copies each parameter as a
// uint64. The Go side (launch.go) packs arguments accordingly.
#pragma once

#define KERNEL extern "C" __global__

// Dynamic shared memory (the launch's smem bytes). The CPU emulator used by
// the minitron_cudaemu tests defines its own version first.
#ifndef DYNAMIC_SMEM
#define DYNAMIC_SMEM(name) extern __shared__ float name[]
#endif
#ifndef MINITRON_EMU
#include <cuda_bf16.h>
#endif

// Block-wide reductions for blockDim.x a multiple of 32 (≤ 1024). smem must
// hold 32 floats; the result is valid in every thread.
__device__ __forceinline__ float warp_sum(float v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
__device__ __forceinline__ float warp_max(float v) {
	for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
__device__ float block_sum(float v, float *smem) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum(v);
	__syncthreads(); // smem may still be read by a previous reduction
	if (lane == 0) smem[w] = v;
	__syncthreads();
	v = lane < nw ? smem[lane] : 0.f;
	return warp_sum(v);
}
__device__ float block_max(float v, float *smem) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0) smem[w] = v;
	__syncthreads();
	v = lane < nw ? smem[lane] : -INFINITY;
	return warp_max(v);
}
__device__ double block_sum_d(double v, double *smem) {
	int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_sum_d(v);
	__syncthreads();
	if (lane == 0) smem[w] = v;
	__syncthreads();
	v = lane < nw ? smem[lane] : 0.0;
	return warp_sum_d(v);
}

// Grid-stride loop over n elements (n as long long: tensors can exceed 2^31).
#define FOR_N(i, n) for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// row_dots reduces Σ a², Σ b² and Σ a·b over one row of n (one block per
// row, blockDim a multiple of 32) in double; the results are valid in every
// thread. The cosine kernels (row_cosine, cosine_loss_rows) share it.
__device__ void row_dots(const float *a, const float *b, int n, double *sm, double *aa, double *bb, double *ab) {
	double x2 = 0.0, y2 = 0.0, xy = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		double x = a[i], y = b[i];
		x2 += x * x;
		y2 += y * y;
		xy += x * y;
	}
	*aa = block_sum_d(x2, sm);
	*bb = block_sum_d(y2, sm);
	*ab = block_sum_d(xy, sm);
}
