// LayerNorm1P (Nemotron) and RMSNorm, forward and backward, matching
// model/kernels/norm.go and norm_grad.go. One block per row for the
// row-wise parts; the column reductions (dw, db) are two deterministic
// passes (no atomics): partial sums per chunk of rows, then col_sum.
#include "common.cuh"

// out = (x−mean)·rstd·(w+1) + b; mean/rstd (may be null) receive the row
// statistics. b may be null. The variance is the biased one, computed in two
// passes over the row (mean first), like the CPU kernel.
KERNEL void layernorm1p_fwd(float *out, float *mean, float *rstd, const float *x, const float *w, const float *b, int rows, int dim, float eps) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *xr = x + (long long)r * dim;
	float *orow = out + (long long)r * dim;
	float s = 0.f;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) s += xr[i];
	float mu = block_sum(s, sm) / dim;
	float ss = 0.f;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) { float d = xr[i] - mu; ss += d * d; }
	float rs = rsqrtf(block_sum(ss, sm) / dim + eps);
	if (threadIdx.x == 0) {
		if (mean) mean[r] = mu;
		if (rstd) rstd[r] = rs;
	}
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		float y = (xr[i] - mu) * rs * (w[i] + 1.f);
		orow[i] = b ? y + b[i] : y;
	}
}

// dx = rstd·(g − mean(g) − xhat·mean(g·xhat)) with g = dy·(w+1); written or
// (accumulate ≠ 0) added.
KERNEL void layernorm1p_bwd_dx(float *dx, const float *dy, const float *x, const float *w, const float *mean, const float *rstd, int rows, int dim, int accumulate) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	long long o = (long long)r * dim;
	float m = mean[r], rs = rstd[r];
	float s1 = 0.f, s2 = 0.f;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		float g = dy[o + i] * (w[i] + 1.f);
		s1 += g;
		s2 += g * (x[o + i] - m) * rs;
	}
	s1 = block_sum(s1, sm) / dim;
	s2 = block_sum(s2, sm) / dim;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		float v = rs * (dy[o + i] * (w[i] + 1.f) - s1 - (x[o + i] - m) * rs * s2);
		dx[o + i] = accumulate ? dx[o + i] + v : v;
	}
}

// Partial column sums for the weight (and bias) gradients: block (32, 8)
// owns 32 columns of a chunk of rows (blockIdx.y); pw[chunk, j] = Σ dy·xhat
// and pb[chunk, j] = Σ dy over the chunk's rows (pb may be null). col_sum
// then adds the chunks: two deterministic passes, and enough blocks to fill
// the GPU (one pass over all rows per column block left most SMs idle).
KERNEL void layernorm1p_bwd_dw(float *pw, float *pb, const float *dy, const float *x, const float *mean, const float *rstd, int rows, int dim, int chunkRows) {
	__shared__ float sw_[8][33], sb_[8][33];
	int c = blockIdx.x * 32 + threadIdx.x;
	int r0 = blockIdx.y * chunkRows, r1 = min(rows, r0 + chunkRows);
	float sw = 0.f, sb = 0.f;
	if (c < dim)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) {
			long long j = (long long)r * dim + c;
			float g = dy[j];
			sw += g * (x[j] - mean[r]) * rstd[r];
			sb += g;
		}
	sw_[threadIdx.y][threadIdx.x] = sw;
	sb_[threadIdx.y][threadIdx.x] = sb;
	__syncthreads();
	if (threadIdx.y == 0 && c < dim) {
		for (int k = 1; k < 8; k++) { sw += sw_[k][threadIdx.x]; sb += sb_[k][threadIdx.x]; }
		pw[(long long)blockIdx.y * dim + c] = sw;
		if (pb) pb[(long long)blockIdx.y * dim + c] = sb;
	}
}

// out = x·rsqrt(mean(x²)+eps)·w; rstd (may be null) receives the factor.
KERNEL void rmsnorm_fwd(float *out, float *rstd, const float *x, const float *w, int rows, int dim, float eps) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *xr = x + (long long)r * dim;
	float ss = 0.f;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
	float rs = rsqrtf(block_sum(ss, sm) / dim + eps);
	if (threadIdx.x == 0 && rstd) rstd[r] = rs;
	float *orow = out + (long long)r * dim;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) orow[i] = w[i] * (xr[i] * rs);
}

// dx = rstd·dy·w − x·rstd³·mean(dy·w·x); written or added.
KERNEL void rmsnorm_bwd_dx(float *dx, const float *dy, const float *x, const float *w, const float *rstd, int rows, int dim, int accumulate) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	long long o = (long long)r * dim;
	float rs = rstd[r];
	float s = 0.f;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) s += dy[o + i] * w[i] * x[o + i];
	float c = block_sum(s, sm) / dim * rs * rs * rs;
	for (int i = threadIdx.x; i < dim; i += blockDim.x) {
		float v = rs * dy[o + i] * w[i] - x[o + i] * c;
		dx[o + i] = accumulate ? dx[o + i] + v : v;
	}
}

// Partial weight-gradient sums of RMSNorm, Σ dy·x·rstd per chunk of rows,
// as layernorm1p_bwd_dw.
KERNEL void rmsnorm_bwd_dw(float *pw, const float *dy, const float *x, const float *rstd, int rows, int dim, int chunkRows) {
	__shared__ float sw_[8][33];
	int c = blockIdx.x * 32 + threadIdx.x;
	int r0 = blockIdx.y * chunkRows, r1 = min(rows, r0 + chunkRows);
	float sw = 0.f;
	if (c < dim)
		for (int r = r0 + threadIdx.y; r < r1; r += 8) {
			long long j = (long long)r * dim + c;
			sw += dy[j] * x[j] * rstd[r];
		}
	sw_[threadIdx.y][threadIdx.x] = sw;
	__syncthreads();
	if (threadIdx.y == 0 && c < dim) {
		for (int k = 1; k < 8; k++) sw += sw_[k][threadIdx.x];
		pw[(long long)blockIdx.y * dim + c] = sw;
	}
}
