//go:build cgo && !purego && amd64

package kernels

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -lm
#include <immintrin.h>
#include <math.h>
#include <string.h>

// AVX2+FMA versions of the hot elementwise row kernels (the Go compiler
// does not vectorise). Same algorithm as Exp32: n = round(x·log2e),
// r = x − n·ln2 (two-part), degree-7 Taylor polynomial, scale by 2^n;
// results differ from the Go path only by float rounding (FMA, ties of
// the rounding, summation order). Chosen at run time (mt_have_avx2).

__attribute__((target("avx2,fma")))
static inline __m256 mt_exp8(__m256 x) {
	const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.72283f);
	__m256 under = _mm256_cmp_ps(x, lo, _CMP_NGT_UQ); // !(x > lo), NaN too
	__m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
	__m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
	__m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
	__m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.0f / 5040);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
	__m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
	y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
	y = _mm256_andnot_ps(under, y);
	return _mm256_blendv_ps(y, x, nan);
}

__attribute__((target("avx2,fma")))
static float mt_max(const float *x, long n) {
	__m256 m8 = _mm256_set1_ps(-INFINITY);
	long i = 0;
	for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + i));
	float t[8];
	_mm256_storeu_ps(t, m8);
	float m = -INFINITY;
	for (int j = 0; j < 8; j++) if (t[j] > m) m = t[j];
	for (; i < n; i++) if (x[i] > m) m = x[i];
	return m;
}

// Returned by value: a pointer out-parameter would make Go heap-allocate
// the variable on every call.
typedef struct { double s; float m; } mt_softmax_res;

// mt_softmax writes dst = scale·softmax(x) (dst may alias x) and returns
// the row max m and s = Σ exp(x − m). A row whose max is −Inf becomes
// zeros with s = 0.
__attribute__((target("avx2,fma")))
static mt_softmax_res mt_softmax(float *dst, const float *x, long n, float scale) {
	float m = mt_max(x, n);
	mt_softmax_res res = {0, m};
	if (m == -INFINITY) {
		memset(dst, 0, n * sizeof(float));
		return res;
	}
	__m256 m8 = _mm256_set1_ps(m), s8 = _mm256_setzero_ps();
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 e = mt_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
		_mm256_storeu_ps(dst + i, e);
		s8 = _mm256_add_ps(s8, e);
	}
	if (i < n) {
		float buf[8] = {0}, out[8];
		long k = n - i;
		for (long j = 0; j < 8; j++) buf[j] = j < k ? x[i + j] - m : -INFINITY;
		__m256 e = mt_exp8(_mm256_loadu_ps(buf));
		_mm256_storeu_ps(out, e);
		s8 = _mm256_add_ps(s8, e);
		for (long j = 0; j < k; j++) dst[i + j] = out[j];
	}
	float t[8];
	_mm256_storeu_ps(t, s8);
	double s = 0;
	for (int j = 0; j < 8; j++) s += t[j];
	__m256 c = _mm256_set1_ps((float)(scale / s));
	for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_loadu_ps(dst + i), c));
	float cs = (float)(scale / s);
	for (; i < n; i++) dst[i] *= cs;
	res.s = s;
	return res;
}

// relu(x)² with the sign bit cleared as in the Go path (NaN passes).
__attribute__((target("avx2,fma")))
static void mt_relu2(float *out, const float *x, long n) {
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
		__m256 v = _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_srai_epi32(u, 31), u));
		_mm256_storeu_ps(out + i, _mm256_mul_ps(v, v));
	}
	for (; i < n; i++) {
		float v = x[i] > 0 || x[i] != x[i] ? x[i] : 0;
		out[i] = v * v;
	}
}

// dx = dy·2·max(x, 0) (dx may alias dy).
__attribute__((target("avx2,fma")))
static void mt_relu2_bwd(float *dx, const float *dy, const float *x, long n) {
	const __m256 z = _mm256_setzero_ps(), two = _mm256_set1_ps(2);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + i), two);
		_mm256_storeu_ps(dx + i, _mm256_mul_ps(g, _mm256_max_ps(z, _mm256_loadu_ps(x + i))));
	}
	for (; i < n; i++) {
		float v = x[i] > 0 || x[i] != x[i] ? x[i] : 0;
		dx[i] = dy[i] * 2 * v;
	}
}

// One AdamW step over a run of parameters, the Go path's operations in the
// same order without FMA (target avx2 only, so GCC cannot contract), so
// the result is bit-identical.
__attribute__((target("avx2")))
static void mt_adamw(float *w, const float *g, float *m, float *v, long n,
		float b1, float b2, float decay, float step, float rbc2, float eps) {
	const __m256 B1 = _mm256_set1_ps(b1), B2 = _mm256_set1_ps(b2), C1 = _mm256_set1_ps(1 - b1),
		C2 = _mm256_set1_ps(1 - b2), D = _mm256_set1_ps(decay), S = _mm256_set1_ps(step),
		R = _mm256_set1_ps(rbc2), E = _mm256_set1_ps(eps);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 gj = _mm256_loadu_ps(g + i);
		__m256 mj = _mm256_add_ps(_mm256_mul_ps(B1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(C1, gj));
		__m256 vj = _mm256_add_ps(_mm256_mul_ps(B2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(C2, gj), gj));
		_mm256_storeu_ps(m + i, mj);
		_mm256_storeu_ps(v + i, vj);
		__m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vj), R), E);
		__m256 wj = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), D), _mm256_div_ps(_mm256_mul_ps(S, mj), den));
		_mm256_storeu_ps(w + i, wj);
	}
	for (; i < n; i++) {
		float gj = g[i];
		float mj = b1 * m[i] + (1 - b1) * gj;
		float vj = b2 * v[i] + (1 - b2) * gj * gj;
		m[i] = mj, v[i] = vj;
		w[i] = w[i] * decay - step * mj / (sqrtf(vj) * rbc2 + eps);
	}
}

// LayerNorm1P over rows [0, rows): statistics accumulated in double (4
// lanes), the output in float32 with the Go path's operations (no FMA).
// mean, rstd and b may be NULL. out may alias x.
__attribute__((target("avx2")))
static void mt_ln1p(float *out, float *mean, float *rstd, const float *x, const float *w,
		const float *b, long rows, long dim, float eps) {
	const __m256 one = _mm256_set1_ps(1);
	for (long r = 0; r < rows; r++) {
		const float *xr = x + r * dim;
		float *orow = out + r * dim;
		__m256d s4 = _mm256_setzero_pd();
		long i = 0;
		for (; i + 8 <= dim; i += 8) {
			__m256 v = _mm256_loadu_ps(xr + i);
			s4 = _mm256_add_pd(s4, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
			s4 = _mm256_add_pd(s4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
		}
		double t[4];
		_mm256_storeu_pd(t, s4);
		double s = (t[0] + t[1]) + (t[2] + t[3]);
		for (; i < dim; i++) s += xr[i];
		double mu = s / (double)dim;
		__m256d mu4 = _mm256_set1_pd(mu), q4 = _mm256_setzero_pd();
		for (i = 0; i + 8 <= dim; i += 8) {
			__m256 v = _mm256_loadu_ps(xr + i);
			__m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), mu4);
			__m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), mu4);
			q4 = _mm256_add_pd(q4, _mm256_mul_pd(d0, d0));
			q4 = _mm256_add_pd(q4, _mm256_mul_pd(d1, d1));
		}
		_mm256_storeu_pd(t, q4);
		double ss = (t[0] + t[1]) + (t[2] + t[3]);
		for (; i < dim; i++) {
			double d = (double)xr[i] - mu;
			ss += d * d;
		}
		float rs = (float)(1 / sqrt(ss / (double)dim + (double)eps));
		float m = (float)mu;
		if (mean) mean[r] = m;
		if (rstd) rstd[r] = rs;
		__m256 m8 = _mm256_set1_ps(m), rs8 = _mm256_set1_ps(rs);
		for (i = 0; i + 8 <= dim; i += 8) {
			__m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), m8), rs8),
				_mm256_add_ps(_mm256_loadu_ps(w + i), one));
			if (b) y = _mm256_add_ps(y, _mm256_loadu_ps(b + i));
			_mm256_storeu_ps(orow + i, y);
		}
		for (; i < dim; i++) {
			float y = (xr[i] - m) * rs * (w[i] + 1);
			orow[i] = b ? y + b[i] : y;
		}
	}
}

// dx of LayerNorm1P over rows [0, rows) (see LayerNorm1PBackward); the row
// sums use 8 float lanes.
__attribute__((target("avx2")))
static void mt_ln1p_dx(float *dx, const float *dy, const float *x, const float *w,
		const float *mean, const float *rstd, long rows, long dim, int accumulate) {
	const __m256 one = _mm256_set1_ps(1);
	for (long r = 0; r < rows; r++) {
		const float *xr = x + r * dim, *gr = dy + r * dim;
		float *dr = dx + r * dim;
		float m = mean[r], rs = rstd[r];
		__m256 m8 = _mm256_set1_ps(m), rs8 = _mm256_set1_ps(rs);
		__m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
		long i = 0;
		for (; i + 8 <= dim; i += 8) {
			__m256 g = _mm256_mul_ps(_mm256_loadu_ps(gr + i), _mm256_add_ps(_mm256_loadu_ps(w + i), one));
			a1 = _mm256_add_ps(a1, g);
			a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_mul_ps(g, _mm256_sub_ps(_mm256_loadu_ps(xr + i), m8)), rs8));
		}
		float t1[8], t2[8];
		_mm256_storeu_ps(t1, a1);
		_mm256_storeu_ps(t2, a2);
		float s1 = 0, s2 = 0;
		for (int j = 0; j < 8; j++) s1 += t1[j], s2 += t2[j];
		for (; i < dim; i++) {
			float g = gr[i] * (w[i] + 1);
			s1 += g;
			s2 += g * (xr[i] - m) * rs;
		}
		s1 /= (float)dim;
		s2 /= (float)dim;
		__m256 s18 = _mm256_set1_ps(s1), s28 = _mm256_set1_ps(s2);
		for (i = 0; i + 8 <= dim; i += 8) {
			__m256 g = _mm256_mul_ps(_mm256_loadu_ps(gr + i), _mm256_add_ps(_mm256_loadu_ps(w + i), one));
			__m256 xh = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), m8), rs8), s28);
			__m256 d = _mm256_mul_ps(rs8, _mm256_sub_ps(_mm256_sub_ps(g, s18), xh));
			if (accumulate) d = _mm256_add_ps(_mm256_loadu_ps(dr + i), d);
			_mm256_storeu_ps(dr + i, d);
		}
		for (; i < dim; i++) {
			float d = rs * (gr[i] * (w[i] + 1) - s1 - (xr[i] - m) * rs * s2);
			dr[i] = accumulate ? dr[i] + d : d;
		}
	}
}

// Σ x² in double (4 lanes × 2 accumulators).
__attribute__((target("avx2,fma")))
static double mt_sumsq(const float *x, long n) {
	__m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		__m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
		a = _mm256_fmadd_pd(lo, lo, a);
		b = _mm256_fmadd_pd(hi, hi, b);
	}
	double t[4];
	_mm256_storeu_pd(t, _mm256_add_pd(a, b));
	double s = (t[0] + t[1]) + (t[2] + t[3]);
	for (; i < n; i++) s += (double)x[i] * x[i];
	return s;
}

// Attention backward's softmax step for a block of query rows (see
// AttentionBackward): for row r (query i0+r, keys [0, i0+r] visible),
// dS = P ⊙ (dP − Σ dP·P)·scale over the visible keys, zero after them.
// p has row stride ldp, dp row stride n.
__attribute__((target("avx2,fma")))
static void mt_attn_ds(const float *p, long ldp, float *dp, long n, long rows, long i0, float scale) {
	const __m256 sc = _mm256_set1_ps(scale);
	for (long r = 0; r < rows; r++) {
		const float *pr = p + r * ldp;
		float *dr = dp + r * n;
		long hi = i0 + r + 1, c = 0;
		__m256 a = _mm256_setzero_ps();
		for (; c + 8 <= hi; c += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(pr + c), _mm256_loadu_ps(dr + c), a);
		float t[8];
		_mm256_storeu_ps(t, a);
		float s = 0;
		for (int j = 0; j < 8; j++) s += t[j];
		for (; c < hi; c++) s += pr[c] * dr[c];
		__m256 s8 = _mm256_set1_ps(s);
		for (c = 0; c + 8 <= hi; c += 8) {
			__m256 d = _mm256_sub_ps(_mm256_loadu_ps(dr + c), s8);
			_mm256_storeu_ps(dr + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(pr + c), d), sc));
		}
		for (; c < hi; c++) dr[c] = pr[c] * (dr[c] - s) * scale;
		if (hi < n) memset(dr + hi, 0, (n - hi) * sizeof(float));
	}
}

// ApplyRope over rows [0, rows) (see ApplyRope), the Go path's operations
// without FMA, so results are identical.
__attribute__((target("avx2")))
static void mt_rope(float *x, long rows, long ld, long heads, long headDim, long rot,
		const long long *pos, const float *cosT, const float *sinT) {
	long half = rot / 2;
	for (long r = 0; r < rows; r++) {
		const float *c = cosT + pos[r] * half, *s = sinT + pos[r] * half;
		for (long h = 0; h < heads; h++) {
			float *a = x + r * ld + h * headDim, *b = a + half;
			long i = 0;
			for (; i + 8 <= half; i += 8) {
				__m256 av = _mm256_loadu_ps(a + i), bv = _mm256_loadu_ps(b + i);
				__m256 cv = _mm256_loadu_ps(c + i), sv = _mm256_loadu_ps(s + i);
				_mm256_storeu_ps(a + i, _mm256_sub_ps(_mm256_mul_ps(av, cv), _mm256_mul_ps(bv, sv)));
				_mm256_storeu_ps(b + i, _mm256_add_ps(_mm256_mul_ps(bv, cv), _mm256_mul_ps(av, sv)));
			}
			for (; i < half; i++) {
				float av = a[i], bv = b[i];
				a[i] = av * c[i] - bv * s[i];
				b[i] = bv * c[i] + av * s[i];
			}
		}
	}
}

// LayerNorm1P's dw (and db when non-NULL) for columns [c0, c1): per column
// the same sequential sum over rows as the Go path, vectorised across
// columns without FMA, so results are identical.
__attribute__((target("avx2")))
static void mt_ln1p_dw(float *dw, float *db, const float *dy, const float *x, const float *mean,
		const float *rstd, long rows, long dim, long c0, long c1) {
	long c = c0;
	for (; c + 8 <= c1; c += 8) {
		__m256 w8 = _mm256_setzero_ps(), b8 = _mm256_setzero_ps();
		for (long r = 0; r < rows; r++) {
			__m256 g = _mm256_loadu_ps(dy + r * dim + c);
			__m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + r * dim + c), _mm256_set1_ps(mean[r]));
			w8 = _mm256_add_ps(w8, _mm256_mul_ps(_mm256_mul_ps(g, d), _mm256_set1_ps(rstd[r])));
			b8 = _mm256_add_ps(b8, g);
		}
		_mm256_storeu_ps(dw + c, w8);
		if (db) _mm256_storeu_ps(db + c, b8);
	}
	for (; c < c1; c++) {
		float w = 0, b = 0;
		for (long r = 0; r < rows; r++) {
			float g = dy[r * dim + c];
			w += g * (x[r * dim + c] - mean[r]) * rstd[r];
			b += g;
		}
		dw[c] = w;
		if (db) db[c] = b;
	}
}

static int mt_have_avx2(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
*/
import "C"

import (
	"math"
	"unsafe"
)

// haveVec: the CPU runs the AVX2+FMA kernels.
var haveVec = C.mt_have_avx2() != 0

// softmaxRowVec is softmaxScaled on AVX2+FMA (ok false: not available).
func softmaxRowVec(dst, x []float32, scale float32) (m float32, s float64, ok bool) {
	if !haveVec {
		return 0, 0, false
	}
	if len(x) == 0 {
		return float32(math.Inf(-1)), 0, true
	}
	r := C.mt_softmax(f32p(dst[:len(x)]), f32p(x), C.long(len(x)), C.float(scale))
	return float32(r.m), float64(r.s), true
}

func f32p(x []float32) *C.float { return (*C.float)(unsafe.Pointer(&x[0])) }

// relu2Vec writes out = relu(x)² (ok false: no vector kernel).
func relu2Vec(out, x []float32) bool {
	if !haveVec {
		return false
	}
	if len(x) > 0 {
		C.mt_relu2(f32p(out[:len(x)]), f32p(x), C.long(len(x)))
	}
	return true
}

// relu2BackwardVec writes dx = dy·2·max(x, 0).
func relu2BackwardVec(dx, dy, x []float32) bool {
	if !haveVec {
		return false
	}
	if len(x) > 0 {
		C.mt_relu2_bwd(f32p(dx[:len(x)]), f32p(dy[:len(x)]), f32p(x), C.long(len(x)))
	}
	return true
}

func adamWVec(w, g, m, v []float32, b1, b2, decay, step, rbc2, eps float32) bool {
	if !haveVec {
		return false
	}
	if n := len(w); n > 0 {
		C.mt_adamw(f32p(w), f32p(g[:n]), f32p(m[:n]), f32p(v[:n]), C.long(n),
			C.float(b1), C.float(b2), C.float(decay), C.float(step), C.float(rbc2), C.float(eps))
	}
	return true
}

func f32pOrNil(x []float32) *C.float {
	if x == nil {
		return nil
	}
	return f32p(x)
}

// layerNorm1PVec is LayerNorm1PStats over rows rows (ok false: no vector
// kernel). mean, rstd and b may be nil.
func layerNorm1PVec(out, mean, rstd, x, w, b []float32, rows, dim int, eps float32) bool {
	if !haveVec {
		return false
	}
	if rows > 0 && dim > 0 {
		C.mt_ln1p(f32p(out[:rows*dim]), f32pOrNil(mean), f32pOrNil(rstd), f32p(x[:rows*dim]), f32p(w[:dim]),
			f32pOrNil(b), C.long(rows), C.long(dim), C.float(eps))
	}
	return true
}

// layerNorm1PDxVec is LayerNorm1PBackward's dx over rows rows.
func layerNorm1PDxVec(dx, dy, x, w, mean, rstd []float32, rows, dim int, accumulate bool) bool {
	if !haveVec {
		return false
	}
	acc := C.int(0)
	if accumulate {
		acc = 1
	}
	if rows > 0 && dim > 0 {
		C.mt_ln1p_dx(f32p(dx[:rows*dim]), f32p(dy[:rows*dim]), f32p(x[:rows*dim]), f32p(w[:dim]),
			f32p(mean[:rows]), f32p(rstd[:rows]), C.long(rows), C.long(dim), acc)
	}
	return true
}

func sumSquaresVec(x []float32) (float64, bool) {
	if !haveVec {
		return 0, false
	}
	if len(x) == 0 {
		return 0, true
	}
	return float64(C.mt_sumsq(f32p(x), C.long(len(x)))), true
}

// attnDSVec is AttentionBackward's per-block softmax step (ok false: no
// vector kernel).
func attnDSVec(p []float32, ldp int, dp []float32, n, rows, i0 int, scale float32) bool {
	if !haveVec {
		return false
	}
	C.mt_attn_ds(f32p(p[:(rows-1)*ldp+n]), C.long(ldp), f32p(dp[:rows*n]), C.long(n), C.long(rows), C.long(i0), C.float(scale))
	return true
}

// ropeVec is ApplyRope over rows rows starting at x's row 0 and pos[0].
func ropeVec(x []float32, rows, ld, heads, headDim, rot int, pos []int, cos, sin []float32) bool {
	if !haveVec || unsafe.Sizeof(int(0)) != 8 {
		return false
	}
	if rows > 0 && heads > 0 && rot > 0 {
		C.mt_rope(f32p(x[:(rows-1)*ld+(heads-1)*headDim+rot]), C.long(rows), C.long(ld), C.long(heads), C.long(headDim), C.long(rot),
			(*C.longlong)(unsafe.Pointer(&pos[:rows][0])), f32p(cos), f32p(sin))
	}
	return true
}

// layerNorm1PDwVec is LayerNorm1PBackward's dw/db for columns [c0, c1).
func layerNorm1PDwVec(dw, db, dy, x, mean, rstd []float32, rows, dim, c0, c1 int) bool {
	if !haveVec {
		return false
	}
	if rows > 0 && c1 > c0 {
		C.mt_ln1p_dw(f32p(dw[:dim]), f32pOrNil(db), f32p(dy[:rows*dim]), f32p(x[:rows*dim]), f32p(mean[:rows]), f32p(rstd[:rows]),
			C.long(rows), C.long(dim), C.long(c0), C.long(c1))
	}
	return true
}
