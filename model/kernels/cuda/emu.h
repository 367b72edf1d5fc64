// CPU emulation of the CUDA execution model, just enough to run
// csrc/*.cu unchanged for the minitron_cudaemu tests (no GPU needed): each
// block's threads are cooperative fibers (ucontext) on one OS thread, run
// round-robin; __syncthreads and warp shuffles are barriers over the live
// threads of the block / warp. __shared__ becomes static, which is shared by
// the fibers because blocks run one at a time. Slow (a context switch per
// thread per barrier): for small test sizes only.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#define MINITRON_EMU 1

struct dim3 {
	unsigned x, y, z;
};
extern dim3 threadIdx, blockIdx, blockDim, gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
void *emu_dyn_smem();
#define DYNAMIC_SMEM(name) float *name = (float *)emu_dyn_smem()

void __syncthreads();
double emu_shfl_xor(double v, int laneMask);
inline float __shfl_xor_sync(unsigned, float v, int m) { return (float)emu_shfl_xor(v, m); }
inline double __shfl_xor_sync(unsigned, double v, int m) { return emu_shfl_xor(v, m); }

// One OS thread runs every fiber, and fibers only switch at barriers: a
// read-modify-write is atomic.
inline float atomicAdd(float *p, float v) {
	float o = *p;
	*p = o + v;
	return o;
}
inline double atomicAdd(double *p, double v) {
	double o = *p;
	*p = o + v;
	return o;
}

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
using std::isinf;

struct __nv_bfloat16 {
	uint16_t x;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	u += 0x7fff + ((u >> 16) & 1);
	__nv_bfloat16 h;
	h.x = (uint16_t)(u >> 16);
	return h;
}
inline float __bfloat162float(__nv_bfloat16 h) {
	uint32_t u = (uint32_t)h.x << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}
