// Causal / sliding-window GQA attention (kernels.Attention and
// kernels.AttentionBackward). A plain correct kernel: one block per
// (query row, head, sequence), scores for the row's visible keys in shared
// memory (so Tk is limited by the 48 KiB default: the Go side checks), one
// warp per key for the dot products. Not yet a flash-attention kernel: this
// is the reference the tensor-core version will be tested against.
#include "common.cuh"

// Layout as kernels.AttnDims: q/out rows b·Tq+i with strides ldq/ldo, k/v rows
// b·kseq+j with strides ldk/ldv; query head h reads KV head h/(H/KVH). Query
// i sits at position Tk−Tq+i and sees keys lo..pos, lo = max(0, pos−window+1)
// when window > 0. probs (may be null) receives [B, H, Tq, Tk], zero where
// masked. Dynamic shared memory: (hd + Tk) floats.
KERNEL void attention_fwd(float *out, const float *q, const float *k, const float *v, float *probs,
	int H, int KVH, int hd, int Tq, int Tk, int window, int ldq, int ldk, int ldv, int ldo, int kseq, float scale) {
	DYNAMIC_SMEM(smem);
	__shared__ float red[32];
	float *qs = smem, *sc = smem + hd;
	int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
	int g = h / (H / KVH);
	int pos = Tk - Tq + i;
	int lo = window > 0 ? max(0, pos - window + 1) : 0;
	int n = pos - lo + 1;
	const float *qr = q + (long long)(b * Tq + i) * ldq + h * hd;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qr[d];
	__syncthreads();
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	const float *kb = k + (long long)b * kseq * ldk + g * hd;
	for (int j = warp; j < n; j += nw) {
		const float *kr = kb + (long long)(lo + j) * ldk;
		float s = 0.f;
		for (int d = lane; d < hd; d += 32) s += qs[d] * kr[d];
		s = warp_sum(s);
		if (lane == 0) sc[j] = s * scale;
	}
	__syncthreads();
	float m = -INFINITY;
	for (int j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, sc[j]);
	m = block_max(m, red);
	float z = 0.f;
	for (int j = threadIdx.x; j < n; j += blockDim.x) { float e = expf(sc[j] - m); sc[j] = e; z += e; }
	float inv = 1.f / block_sum(z, red); // its barriers publish sc
	for (int j = threadIdx.x; j < n; j += blockDim.x) sc[j] *= inv;
	__syncthreads();
	if (probs) {
		float *pr = probs + ((long long)(b * H + h) * Tq + i) * Tk;
		for (int j = threadIdx.x; j < Tk; j += blockDim.x) pr[j] = (j >= lo && j <= pos) ? sc[j - lo] : 0.f;
	}
	const float *vb = v + (long long)b * kseq * ldv + g * hd + (long long)lo * ldv;
	float *orow = out + (long long)(b * Tq + i) * ldo + h * hd;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		float acc = 0.f;
		for (int j = 0; j < n; j++) acc += sc[j] * vb[(long long)j * ldv + d];
		orow[d] = acc;
	}
}

// Backward for Tq == Tk == T, packed sequences, given the forward's probs:
// dP = dO·Vᵀ, dS = P⊙(dP − Σ P·dP)·scale, dQ = dS·K (overwritten),
// dK += dSᵀ·Q and dV += Pᵀ·dO (atomic: dk and dv must be zeroed first; the
// Go wrapper does). Dynamic shared memory: (2·hd + T) floats.
KERNEL void attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v, const float *probs,
	int H, int KVH, int hd, int T, int ldq, int ldk, int ldv, int ldo, int lddq, int lddk, int lddv, float scale) {
	DYNAMIC_SMEM(smem);
	__shared__ float red[32];
	float *qs = smem, *dos = smem + hd, *ds = smem + 2 * hd;
	int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
	int g = h / (H / KVH);
	int n = i + 1; // keys 0..i; P is zero outside the window, so dS is too
	long long row = (long long)b * T + i;
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		qs[d] = q[row * ldq + h * hd + d];
		dos[d] = dout[row * ldo + h * hd + d];
	}
	__syncthreads();
	const float *p = probs + ((long long)(b * H + h) * T + i) * T;
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	long long base = (long long)b * T;
	for (int j = warp; j < n; j += nw) {
		const float *vr = v + (base + j) * ldv + g * hd;
		float s = 0.f;
		for (int d = lane; d < hd; d += 32) s += dos[d] * vr[d];
		s = warp_sum(s);
		if (lane == 0) ds[j] = s;
	}
	__syncthreads();
	float s = 0.f;
	for (int j = threadIdx.x; j < n; j += blockDim.x) s += p[j] * ds[j];
	s = block_sum(s, red);
	for (int j = threadIdx.x; j < n; j += blockDim.x) ds[j] = p[j] * (ds[j] - s) * scale;
	__syncthreads();
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		float acc = 0.f;
		for (int j = 0; j < n; j++) acc += ds[j] * k[(base + j) * ldk + g * hd + d];
		dq[row * lddq + h * hd + d] = acc;
	}
	for (int j = warp; j < n; j += nw) {
		float dsj = ds[j], pj = p[j];
		if (dsj == 0.f && pj == 0.f) continue;
		float *dkr = dk + (base + j) * lddk + g * hd;
		float *dvr = dv + (base + j) * lddv + g * hd;
		for (int d = lane; d < hd; d += 32) {
			atomicAdd(&dkr[d], dsj * qs[d]);
			atomicAdd(&dvr[d], pj * dos[d]);
		}
	}
}

// x[r, c] = 0 for c < cols, rows of stride ld (clears a column band of a
// fused buffer).
KERNEL void zero_band(float *x, int rows, int cols, int ld) {
	FOR_N(t, (long long)rows * cols) x[(t / cols) * ld + t % cols] = 0.f;
}

// The tensor-core path (Device.AttentionTC): cuBLAS writes the scaled
// scores of every (sequence, head) into s [B·H, T, T]; this turns each row
// into the causal (sliding-window) softmax in place, zero where masked,
// exactly the probs layout of attention_fwd. Grid (T, B·H).
KERNEL void attn_softmax_causal(float *s, int T, int window) {
	__shared__ float sm[32];
	int i = blockIdx.x;
	float *row = s + ((long long)blockIdx.y * T + i) * T;
	int lo = window > 0 ? max(0, i - window + 1) : 0;
	float m = -INFINITY;
	for (int j = lo + threadIdx.x; j <= i; j += blockDim.x) m = fmaxf(m, row[j]);
	m = block_max(m, sm);
	float z = 0.f;
	for (int j = lo + threadIdx.x; j <= i; j += blockDim.x) z += expf(row[j] - m);
	float inv = 1.f / block_sum(z, sm);
	for (int j = threadIdx.x; j < T; j += blockDim.x) row[j] = (j >= lo && j <= i) ? expf(row[j] - m) * inv : 0.f;
}

// Softmax backward in place over dp [nb, T, T] (dP = dO·Vᵀ of nb heads):
// dS = P⊙(dP − Σ_j P·dP)·scale, zero beyond the diagonal. p is the probs
// of the same heads, pstride floats apart. Grid (T, nb).
KERNEL void attn_softmax_bwd(float *dp, const float *p, int T, long long pstride, float scale) {
	__shared__ float sm[32];
	int i = blockIdx.x;
	float *d = dp + ((long long)blockIdx.y * T + i) * T;
	const float *pr = p + blockIdx.y * pstride + (long long)i * T;
	float s = 0.f;
	for (int j = threadIdx.x; j <= i; j += blockDim.x) s += pr[j] * d[j];
	s = block_sum(s, sm);
	for (int j = threadIdx.x; j < T; j += blockDim.x) d[j] = j <= i ? pr[j] * (d[j] - s) * scale : 0.f;
}
