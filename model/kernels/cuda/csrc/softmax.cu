// Row softmax / log-softmax / logsumexp and the fused loss kernels over
// logits rows (kernels.SoftmaxRows, LogSoftmaxRows, LogSumExpRows,
// SoftmaxCrossEntropy, KLForward, KLReverse, KLForwardTopK). One block per
// row. The loss kernels may write grad over the student logits (aliasing)
// when accumulate is 0: every element is read for the row statistics before
// any write, and each thread writes only the elements it reads.
#include "common.cuh"

__device__ float row_max(const float *x, int n, float *sm) {
	float m = -INFINITY;
	for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, x[i]);
	return block_max(m, sm);
}

KERNEL void softmax_rows(float *out, const float *x, int rows, int n) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *xr = x + (long long)r * n;
	float *o = out + (long long)r * n;
	float m = row_max(xr, n, sm);
	if (isinf(m) && m < 0) { // all masked: zeros, as the CPU does
		for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = 0.f;
		return;
	}
	float s = 0.f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(xr[i] - m);
	float inv = 1.f / block_sum(s, sm);
	for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = expf(xr[i] - m) * inv;
}

__device__ float row_lse(const float *x, int n, float *sm) {
	float m = row_max(x, n, sm);
	if (isinf(m)) return m;
	float s = 0.f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(x[i] - m);
	return m + logf(block_sum(s, sm));
}

KERNEL void logsumexp_rows(float *lse, const float *x, int rows, int n) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	float l = row_lse(x + (long long)r * n, n, sm);
	if (threadIdx.x == 0) lse[r] = l;
}

KERNEL void log_softmax_rows(float *out, const float *x, int rows, int n) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *xr = x + (long long)r * n;
	float l = row_lse(xr, n, sm);
	float *o = out + (long long)r * n;
	for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = xr[i] - l;
}

// rowLoss[r] = logsumexp(x_r) − x_r[t]; grad = scale·(softmax(x_r) − onehot(t));
// t < 0 ignores the row.
KERNEL void cross_entropy(float *grad, float *rowLoss, const float *logits, const int *targets, int rows, int n, float scale, int accumulate) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *x = logits + (long long)r * n;
	float *g = grad + (long long)r * n;
	int t = targets[r];
	if (t < 0 || t >= n) {
		if (threadIdx.x == 0) rowLoss[r] = 0.f;
		if (!accumulate)
			for (int i = threadIdx.x; i < n; i += blockDim.x) g[i] = 0.f;
		return;
	}
	float xt = x[t];
	float m = row_max(x, n, sm);
	float s = 0.f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s += expf(x[i] - m);
	s = block_sum(s, sm); // its barriers also order every read of x[t] before the writes
	float inv = scale / s;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = expf(x[i] - m) * inv - (i == t ? scale : 0.f);
		g[i] = accumulate ? g[i] + v : v;
	}
	if (threadIdx.x == 0) rowLoss[r] = m + logf(s) - xt;
}

// Per-row log-normalisers of student and teacher at inverse temperature it.
__device__ void two_lse(const float *s, const float *t, int n, float it, float *sm, float *ls, float *lt) {
	float ms = row_max(s, n, sm) * it, mt = row_max(t, n, sm) * it;
	float zs = 0.f, zt = 0.f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		zs += expf(s[i] * it - ms);
		zt += expf(t[i] * it - mt);
	}
	*ls = ms + logf(block_sum(zs, sm));
	*lt = mt + logf(block_sum(zt, sm));
}

// Forward KL(teacher‖student) at temperature tau: rowLoss = τ²·Σ p(log p − log q),
// grad = scale·τ·(q − p).
KERNEL void kl_forward(float *grad, float *rowLoss, const float *student, const float *teacher, int rows, int n, float tau, float scale, int accumulate) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *s = student + (long long)r * n, *t = teacher + (long long)r * n;
	float *g = grad + (long long)r * n;
	float it = 1.f / tau, ls, lt;
	two_lse(s, t, n, it, sm, &ls, &lt);
	__shared__ double smd[32];
	float c = scale * tau;
	double kl = 0.0; // float64 like the CPU's
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float lp = t[i] * it - lt, lq = s[i] * it - ls;
		float p = expf(lp), q = expf(lq);
		kl += (double)(p * (lp - lq));
		float v = c * (q - p);
		g[i] = accumulate ? g[i] + v : v;
	}
	kl = block_sum_d(kl, smd);
	if (threadIdx.x == 0) rowLoss[r] = (float)kl * tau * tau;
}

// Reverse KL(student‖teacher): rowLoss = τ²·Σ q(log q − log p),
// grad_j = scale·τ·q_j·(log q_j − log p_j − KL/τ²).
KERNEL void kl_reverse(float *grad, float *rowLoss, const float *student, const float *teacher, int rows, int n, float tau, float scale, int accumulate) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *s = student + (long long)r * n, *t = teacher + (long long)r * n;
	float *g = grad + (long long)r * n;
	float it = 1.f / tau, ls, lt;
	two_lse(s, t, n, it, sm, &ls, &lt);
	// The KL enters every gradient entry (lq − lp − KL): sum it in float64,
	// as the CPU does, or its rounding shows in the large-q entries.
	__shared__ double smd[32];
	double kld = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float lq = s[i] * it - ls;
		kld += (double)(expf(lq) * (lq - (t[i] * it - lt)));
	}
	float kl = (float)block_sum_d(kld, smd);
	float c = scale * tau;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float lq = s[i] * it - ls;
		float v = c * expf(lq) * (lq - (t[i] * it - lt) - kl);
		g[i] = accumulate ? g[i] + v : v;
	}
	if (threadIdx.x == 0) rowLoss[r] = kl * tau * tau;
}

// Forward KL against the teacher's top-k logits (idx, val [rows, k]):
// p = softmax over the k entries, grad = scale·τ·(q − p). The k indices of a
// row must be distinct (TopK's are).
KERNEL void kl_forward_topk(float *grad, float *rowLoss, const float *student, const int *idx, const float *val, int k, int rows, int n, float tau, float scale, int accumulate) {
	__shared__ float sm[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *s = student + (long long)r * n;
	const int *ix = idx + (long long)r * k;
	const float *tv = val + (long long)r * k;
	float *g = grad + (long long)r * n;
	float it = 1.f / tau;
	float ms = row_max(s, n, sm) * it, mt = row_max(tv, k, sm) * it;
	float zs = 0.f, zt = 0.f;
	for (int i = threadIdx.x; i < n; i += blockDim.x) zs += expf(s[i] * it - ms);
	for (int j = threadIdx.x; j < k; j += blockDim.x) zt += expf(tv[j] * it - mt);
	float ls = ms + logf(block_sum(zs, sm)), lt = mt + logf(block_sum(zt, sm));
	__shared__ double smd[32];
	double kl = 0.0;
	for (int j = threadIdx.x; j < k; j += blockDim.x) {
		float lp = tv[j] * it - lt;
		kl += (double)(expf(lp) * (lp - (s[ix[j]] * it - ls)));
	}
	kl = block_sum_d(kl, smd); // barrier: the KL read s[ix[j]] before grad (maybe s) is written
	float c = scale * tau;
	for (int i = threadIdx.x; i < n; i += blockDim.x) {
		float v = c * expf(s[i] * it - ls);
		g[i] = accumulate ? g[i] + v : v;
	}
	__syncthreads();
	for (int j = threadIdx.x; j < k; j += blockDim.x) g[ix[j]] -= c * expf(tv[j] * it - lt);
	if (threadIdx.x == 0) rowLoss[r] = kl * tau * tau;
}
