// Inference-side reductions over logits and activations: per-token log
// probabilities and greedy arg-max (eval's logProbAt), the row cosine sum
// of the block-importance score (kernels.Cosine) and a row-wise top-k
// (kernels.TopK). One block per row; float64 where the CPU uses float64.
#include "common.cuh"

#ifdef MINITRON_EMU
// The emulator runs a block's threads on one OS thread and switches only
// at barriers, so a plain read-modify-write is atomic (as emu.h's float
// versions); these are the integer overloads the kernels below need.
inline unsigned atomicAdd(unsigned *p, unsigned v) {
	unsigned o = *p;
	*p = o + v;
	return o;
}
__device__ __forceinline__ unsigned float_bits(float f) {
	unsigned u;
	memcpy(&u, &f, 4);
	return u;
}
#else
__device__ __forceinline__ unsigned float_bits(float f) { return __float_as_uint(f); }
#endif

// logp[r] = logits[r, t] − logsumexp(logits[r, :]) in float64 for t =
// targets[r] (0 when t < 0, NaN when t ≥ n); argmax[r] (skipped when argmax
// is null) = the first index of the row's maximum (NaNs ignored; 0 for a
// row of −Inf). Any blockDim (the arg-max merge is a pairwise tree).
KERNEL void token_logprobs(float *logp, int *argmax, const float *logits, const int *targets, int rows, int n) {
	__shared__ float bv[1024];
	__shared__ int bi[1024];
	__shared__ double smd[32];
	int r = blockIdx.x, tid = threadIdx.x, bd = blockDim.x;
	if (r >= rows) return;
	const float *x = logits + (long long)r * n;
	float best = -INFINITY;
	int at = 0x7fffffff;
	for (int i = tid; i < n; i += bd) // i increases: strict > keeps a thread's first maximum
		if (x[i] > best) {
			best = x[i];
			at = i;
		}
	bv[tid] = best;
	bi[tid] = at;
	for (int s = 1; s < bd; s <<= 1) {
		__syncthreads();
		if ((tid & (2 * s - 1)) == 0 && tid + s < bd) {
			float v = bv[tid + s];
			int j = bi[tid + s];
			if (v > bv[tid] || (v == bv[tid] && j < bi[tid])) {
				bv[tid] = v;
				bi[tid] = j;
			}
		}
	}
	__syncthreads();
	double mx = bv[0];
	int am = bi[0] == 0x7fffffff ? 0 : bi[0];
	int t = targets[r];
	double s = 0.0;
	if (t >= 0)
		for (int i = tid; i < n; i += bd) s += exp((double)x[i] - mx);
	s = block_sum_d(s, smd); // every thread reaches it (t is the block's)
	if (tid == 0) {
		if (argmax) argmax[r] = am;
		if (t < 0) logp[r] = 0.f;
		else if (t >= n) logp[r] = NAN;
		else logp[r] = (float)((double)x[t] - mx - log(s));
	}
}

// cosOut[r] = cos(a[r,:], b[r,:]) in float64, kernels.Cosine's rule: both
// rows zero → 1, exactly one zero → 0. blockDim a multiple of 32.
KERNEL void row_cosine(double *cosOut, const float *a, const float *b, int rows, int n) {
	__shared__ double smd[32];
	int r = blockIdx.x;
	if (r >= rows) return;
	const float *ar = a + (long long)r * n, *br = b + (long long)r * n;
	double aa, bb, ab;
	row_dots(ar, br, n, smd, &aa, &bb, &ab);
	if (threadIdx.x == 0) {
		double c;
		if (aa == 0.0 || bb == 0.0) c = aa == bb ? 1.0 : 0.0;
		else c = ab / sqrt(aa * bb);
		cosOut[r] = c;
	}
}

// out[0] = Σ x[0..n) by one block in a fixed order (deterministic, unlike
// an atomic sum over blocks). blockDim a multiple of 32.
KERNEL void sum_f64(double *out, const double *x, int n) {
	__shared__ double smd[32];
	double s = 0.0;
	for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
	s = block_sum_d(s, smd);
	if (threadIdx.x == 0) out[0] = s;
}

// topk_key maps a float to a uint32 whose unsigned order is the float
// order, with −0 folded onto +0 (the CPU's comparisons treat them as
// equal, so they tie and keep index order).
__device__ __forceinline__ unsigned topk_key(float f) {
	unsigned u = float_bits(f);
	if (u == 0x80000000u) u = 0;
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// topk_entry packs (key, index) so that a descending sort orders by value
// descending, then index ascending (kernels.TopK's tie order). 0 (padding)
// is below every real entry: a real key 0 would be a NaN with every bit set
// together with index 0xffffffff.
__device__ __forceinline__ unsigned long long topk_entry(unsigned key, int i) {
	return ((unsigned long long)key << 32) | (unsigned long long)(0xffffffffu - (unsigned)i);
}

// The top-k kernel's dynamic shared memory: 8-byte entries, declared with
// their own type so that the array is 8-byte aligned.
#ifdef MINITRON_EMU
#define TOPK_SMEM(name) unsigned long long *name = (unsigned long long *)emu_dyn_smem()
#else
#define TOPK_SMEM(name) extern __shared__ unsigned long long name[]
#endif

// idx, val [rows, k] = each row's k largest entries of x [rows, n] (k ≤ n),
// descending, ties to the lower index: kernels.TopK. A radix select on the
// keys finds the k-th largest key T in three passes over the row (digits
// of 12, 12 and 8 bits, each counted into a shared-memory histogram, each
// keeping the bin where the k-th largest lies: 12-bit digits for the
// high bits, where logits crowd into a few exponents, spread the atomic
// adds over more bins). The entries above T and the first (by index)
// entries equal to T that make up k are then gathered and bitonic-sorted.
// Dynamic shared memory: max(P, 2048) 8-byte entries, P ≥ k a power of two
// (the histogram during the passes, the sort buffer after). blockDim a
// multiple of 32, ≤ 1024.
KERNEL void topk_rows(int *idx, float *val, const float *x, int rows, int n, int k, int P) {
	__shared__ unsigned part[64];
	__shared__ unsigned scan[1024];
	__shared__ unsigned s_prefix, s_mask, s_rank, s_eq, s_cnt;
	TOPK_SMEM(buf);
	unsigned *hist = (unsigned *)buf;
	int r = blockIdx.x, tid = threadIdx.x, bd = blockDim.x;
	if (r >= rows) return;
	const float *xr = x + (long long)r * n;
	if (tid == 0) {
		s_prefix = 0;
		s_mask = 0;
		s_rank = (unsigned)k; // rank of the wanted key among those matching the prefix
	}
	for (int pass = 0; pass < 3; pass++) {
		int shift = pass == 0 ? 20 : pass == 1 ? 8 : 0;
		unsigned nb = pass == 2 ? 256u : 4096u; // bins
		__syncthreads(); // thread 0 may still read the previous pass's histogram
		for (unsigned i = tid; i < nb; i += bd) hist[i] = 0;
		__syncthreads(); // also publishes the previous pass's prefix
		unsigned prefix = s_prefix, mask = s_mask;
		for (int i = tid; i < n; i += bd) {
			unsigned u = topk_key(xr[i]);
			if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & (nb - 1)], 1u);
		}
		__syncthreads();
		unsigned per = nb / 64; // part[l] sums bins nb−1−per·l down to nb−per·(l+1)
		for (int l = tid; l < 64; l += bd) {
			unsigned s = 0;
			for (unsigned j = 0; j < per; j++) s += hist[nb - 1 - per * l - j];
			part[l] = s;
		}
		__syncthreads();
		if (tid == 0) {
			unsigned want = s_rank, c = 0;
			int l = 0;
			while (l < 63 && c + part[l] < want) c += part[l++];
			int bin = (int)(nb - 1 - per * l);
			while (bin > 0 && c + hist[bin] < want) c += hist[bin--];
			s_rank = want - c;
			s_eq = hist[bin];
			s_prefix = prefix | ((unsigned)bin << shift);
			s_mask = mask | ((nb - 1) << shift);
			s_cnt = 0;
		}
	}
	__syncthreads(); // the histogram is dead from here: buf is the sort buffer
	unsigned T = s_prefix, need = s_rank;
	bool allEq = s_eq == need; // no tie to break at the boundary
	for (int i = tid; i < n; i += bd) {
		unsigned u = topk_key(xr[i]);
		if (u > T || (allEq && u == T)) buf[atomicAdd(&s_cnt, 1u)] = topk_entry(u, i);
	}
	if (!allEq) {
		// Take the first `need` entries equal to T in index order: each
		// thread counts them in its own contiguous segment, an exclusive
		// scan over threads says how many earlier segments hold.
		int seg = (n + bd - 1) / bd, lo = min(tid * seg, n), hi = min(lo + seg, n);
		unsigned c = 0;
		for (int i = lo; i < hi; i++) c += topk_key(xr[i]) == T;
		scan[tid] = c;
		for (int off = 1; off < bd; off <<= 1) {
			__syncthreads();
			unsigned v = tid >= off ? scan[tid - off] : 0;
			__syncthreads();
			scan[tid] += v;
		}
		unsigned before = scan[tid] - c;
		for (int i = lo; i < hi && before < need; i++)
			if (topk_key(xr[i]) == T) {
				buf[atomicAdd(&s_cnt, 1u)] = topk_entry(T, i);
				before++;
			}
	}
	__syncthreads();
	for (int i = k + tid; i < P; i += bd) buf[i] = 0; // s_cnt == k here
	for (int size = 2; size <= P; size <<= 1)
		for (int stride = size >> 1; stride > 0; stride >>= 1) {
			__syncthreads();
			for (int i = tid; i < P; i += bd) {
				int j = i ^ stride;
				if (j > i) {
					unsigned long long a = buf[i], b = buf[j];
					if ((a < b) == ((i & size) == 0)) { // descending where i&size is 0
						buf[i] = b;
						buf[j] = a;
					}
				}
			}
		}
	__syncthreads();
	int *ix = idx + (long long)r * k;
	float *vv = val + (long long)r * k;
	for (int j = tid; j < k; j += bd) {
		int i = (int)(0xffffffffu - (unsigned)(buf[j] & 0xffffffffull));
		ix[j] = i;
		vv[j] = xr[i];
	}
}
