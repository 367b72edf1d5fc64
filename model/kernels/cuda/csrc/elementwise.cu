// Embedding, activations, residual/bias adds, AdamW and reductions.
#include "common.cuh"

// out[r,:] = table[ids[r],:]; an id outside [0,vocab) writes zeros (the Go
// side checks ids before upload, as kernels.Embedding does).
KERNEL void embedding_fwd(float *out, const float *table, const int *ids, int rows, int dim, int vocab) {
	FOR_N(i, (long long)rows * dim) {
		int r = (int)(i / dim), c = (int)(i % dim);
		int id = ids[r];
		out[i] = (id >= 0 && id < vocab) ? table[(long long)id * dim + c] : 0.f;
	}
}

// dtable[ids[r],:] += dy[r,:] (scatter-add; repeated ids accumulate).
KERNEL void embedding_bwd(float *dtable, const float *dy, const int *ids, int rows, int dim, int vocab) {
	FOR_N(i, (long long)rows * dim) {
		int r = (int)(i / dim), c = (int)(i % dim);
		int id = ids[r];
		if (id >= 0 && id < vocab) atomicAdd(&dtable[(long long)id * dim + c], dy[i]);
	}
}

// Activation codes follow kernels.Activation: 0 relu², 1 silu, 2 gelu (erf),
// 3 gelu tanh, 4 relu.
__device__ __forceinline__ float act_f(int a, float v) {
	switch (a) {
	case 0: { float r = fmaxf(v, 0.f); return r * r; }
	case 1: return v / (1.f + expf(-v));
	case 2: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
	case 3: return 0.5f * v * (1.f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
	default: return fmaxf(v, 0.f);
	}
}
// act'(v) for the codes with a backward on the CPU (relu², silu, relu).
__device__ __forceinline__ float act_d(int a, float v) {
	switch (a) {
	case 0: return 2.f * fmaxf(v, 0.f);
	case 1: { float s = 1.f / (1.f + expf(-v)); return s * (1.f + v * (1.f - s)); }
	default: return v > 0.f ? 1.f : 0.f;
	}
}

KERNEL void act_fwd(float *out, const float *x, long long n, int act) {
	FOR_N(i, n) out[i] = act_f(act, x[i]);
}

KERNEL void act_bwd(float *dx, const float *dy, const float *x, long long n, int act) {
	FOR_N(i, n) dx[i] = dy[i] * act_d(act, x[i]);
}

// out[r,i] = act(gate[r,i])·up[r,i] over [rows, n] with input row stride ld.
KERNEL void act_gated_fwd(float *out, const float *gate, const float *up, int rows, int n, int ld, int act) {
	FOR_N(i, (long long)rows * n) {
		long long r = i / n, c = i % n;
		out[i] = act_f(act, gate[r * ld + c]) * up[r * ld + c];
	}
}

// Backward of act_gated_fwd: dup = dout·act(g), dgate = dout·up·act'(g).
KERNEL void act_gated_bwd(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int rows, int n, int ld, int act) {
	FOR_N(i, (long long)rows * n) {
		long long r = i / n, c = i % n, j = r * ld + c;
		float g = gate[j], u = up[j], o = dout[i];
		dup[j] = o * act_f(act, g);
		dgate[j] = o * u * act_d(act, g);
	}
}

// dst += src
KERNEL void add_inplace(float *dst, const float *src, long long n) {
	FOR_N(i, n) dst[i] += src[i];
}

// x[r,j] += bias[j]
KERNEL void add_bias(float *x, const float *bias, int rows, int n) {
	FOR_N(i, (long long)rows * n) x[i] += bias[i % n];
}

// x *= s
KERNEL void scale_inplace(float *x, long long n, float s) {
	FOR_N(i, n) x[i] *= s;
}

// out[j] = Σ_r x[r,j]; block (32, 8): a column per x-thread, rows strided
// over y-threads, partials reduced in shared memory (deterministic).
KERNEL void col_sum(float *out, const float *x, int rows, int n) {
	__shared__ float part[8][33];
	int c = blockIdx.x * 32 + threadIdx.x;
	float s = 0.f;
	if (c < n)
		for (int r = threadIdx.y; r < rows; r += 8) s += x[(long long)r * n + c];
	part[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && c < n) {
		for (int k = 1; k < 8; k++) s += part[k][threadIdx.x];
		out[c] = s;
	}
}

// One fused AdamW step (torch.optim.AdamW; distill.AdamW.Update):
// m = b1·m + (1−b1)·g; v = b2·v + (1−b2)·g²;
// w = w·decay − stepSize·m/(sqrt(v)·rbc2 + eps), with stepSize = lr/bc1,
// rbc2 = 1/sqrt(bc2), decay = 1 − lr·wd (1 for excluded parameters).
KERNEL void adamw(float *w, const float *g, float *m, float *v, long long n, float b1, float b2, float stepSize, float rbc2, float eps, float decay) {
	FOR_N(i, n) {
		float gi = g[i];
		float mi = b1 * m[i] + (1.f - b1) * gi;
		float vi = b2 * v[i] + (1.f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] = w[i] * decay - stepSize * mi / (sqrtf(vi) * rbc2 + eps);
	}
}

// out[0] += Σ x² in float64 (grad norm); launch with blockDim 256, any grid.
KERNEL void sum_squares(double *out, const float *x, long long n) {
	__shared__ double sm[32];
	double s = 0.0;
	FOR_N(i, n) { double v = x[i]; s += v * v; }
	s = block_sum_d(s, sm);
	if (threadIdx.x == 0) atomicAdd(out, s);
}

// bfloat16 conversions for the bf16 GEMM path (round to nearest even, as
// the CPU's safetensors writer rounds).
KERNEL void f32_to_bf16(__nv_bfloat16 *out, const float *x, long long n) {
	FOR_N(i, n) out[i] = __float2bfloat16_rn(x[i]);
}
KERNEL void bf16_to_f32(float *out, const __nv_bfloat16 *x, long long n) {
	FOR_N(i, n) out[i] = __bfloat162float(x[i]);
}

// bf16 gradients (mixed precision): the sums and scalings run in f32 and
// round to nearest even once per store.
// dst += src, f32 dst (a shard's gradient sum from a bf16 bucket)
KERNEL void add_bf16_to_f32(float *dst, const __nv_bfloat16 *src, long long n) {
	FOR_N(i, n) dst[i] += __bfloat162float(src[i]);
}
// dst[idx[u],:] = dst[idx[u],:] + src[u,:], src f32 [n, dim], dst bf16
// [vocab, dim], rounded once per store: the embedding's gradient, summed
// over a micro-batch's distinct tokens in f32, into its bf16 gradient.
// The ids are distinct, so no two threads write the same value.
KERNEL void add_rows_bf16(__nv_bfloat16 *dst, const float *src, const int *idx, int n, int dim, int vocab) {
	FOR_N(i, (long long)n * dim) {
		int r = (int)(i / dim), c = (int)(i % dim);
		int id = idx[r];
		if (id < 0 || id >= vocab) continue;
		long long o = (long long)id * dim + c;
		dst[o] = __float2bfloat16_rn(__bfloat162float(dst[o]) + src[i]);
	}
}
// dst += src, both bf16 (micro-batch accumulation)
KERNEL void add_bf16(__nv_bfloat16 *dst, const __nv_bfloat16 *src, long long n) {
	FOR_N(i, n) dst[i] = __float2bfloat16_rn(__bfloat162float(dst[i]) + __bfloat162float(src[i]));
}
// x *= s (gradient clipping)
KERNEL void scale_bf16(__nv_bfloat16 *x, float s, long long n) {
	FOR_N(i, n) x[i] = __float2bfloat16_rn(__bfloat162float(x[i]) * s);
}
// out[0] += Σ x² in float64, as sum_squares; blockDim 256, any grid.
KERNEL void sum_squares_bf16(double *out, const __nv_bfloat16 *x, long long n) {
	__shared__ double sm[32];
	double s = 0.0;
	FOR_N(i, n) { double v = __bfloat162float(x[i]); s += v * v; }
	s = block_sum_d(s, sm);
	if (threadIdx.x == 0) atomicAdd(out, s);
}
// adamw with a bf16 gradient, widened to f32 as it is read (the f32
// masters and moments of mixed precision).
KERNEL void adamw_bf16g(float *w, const __nv_bfloat16 *g, float *m, float *v, long long n, float b1, float b2, float stepSize, float rbc2, float eps, float decay) {
	FOR_N(i, n) {
		float gi = __bfloat162float(g[i]);
		float mi = b1 * m[i] + (1.f - b1) * gi;
		float vi = b2 * v[i] + (1.f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] = w[i] * decay - stepSize * mi / (sqrtf(vi) * rbc2 + eps);
	}
}
