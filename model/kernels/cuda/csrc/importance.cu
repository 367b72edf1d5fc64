// Importance statistics (package importance): per-channel activation
// magnitudes reduced over each sample's tokens, then accumulated over
// samples, as importance.Accumulator.addSample does; and per-head L2 norms
// (importance.HeadNorms). Sums are float64 like the CPU's.
#include "common.cuh"

// x [B·T, n] (raw activations; |·| taken here). For each sample b and
// channel c: s1 = Σ_t |x|, s2 = Σ_t x², reduced with seqAgg (0 mean: s1/T,
// 1 l2: sqrt(s2), 2 var: max(0, s2/T − (s1/T)²)) to v, then sum[c] += v and
// sumSq[c] += v². Grid (ceil(n/blockDim), B); each thread owns one (b, c).
KERNEL void importance_accumulate(double *sum, double *sumSq, const float *x, int B, int T, int n, int seqAgg) {
	int c = blockIdx.x * blockDim.x + threadIdx.x, b = blockIdx.y;
	if (c >= n || b >= B) return;
	const float *xs = x + (long long)b * T * n + c;
	double s1 = 0.0, s2 = 0.0;
	for (int t = 0; t < T; t++) {
		double m = fabs((double)xs[(long long)t * n]);
		s1 += m;
		s2 += m * m;
	}
	double v;
	if (seqAgg == 0) v = s1 / T;
	else if (seqAgg == 1) v = sqrt(s2);
	else { double mu = s1 / T; v = fmax(0.0, s2 / T - mu * mu); }
	atomicAdd(&sum[c], v);
	atomicAdd(&sumSq[c], v * v);
}

// dst [rows, heads] = L2 norm over each head's headDim values of x
// [rows, heads·headDim]; one warp per (row, head).
KERNEL void head_norms(float *dst, const float *x, int rows, int heads, int headDim) {
	int lane = threadIdx.x & 31;
	long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
	if (w >= (long long)rows * heads) return;
	const float *seg = x + w * headDim;
	double s = 0.0;
	for (int d = lane; d < headDim; d += 32) { double v = seg[d]; s += v * v; }
	s = warp_sum_d(s);
	if (lane == 0) dst[w] = (float)sqrt(s);
}
