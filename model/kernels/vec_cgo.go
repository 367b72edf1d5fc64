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

// mt_softmax writes dst = scale·softmax(x) (dst may alias x), stores the
// row max in *mo and returns Σ exp(x − max). A row whose max is −Inf
// becomes zeros and returns 0.
__attribute__((target("avx2,fma")))
static double mt_softmax(float *dst, const float *x, long n, float scale, float *mo) {
	float m = mt_max(x, n);
	*mo = m;
	if (m == -INFINITY) {
		memset(dst, 0, n * sizeof(float));
		return 0;
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
	return s;
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
	var cm C.float
	cs := C.mt_softmax((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.long(len(x)), C.float(scale), &cm)
	return float32(cm), float64(cs), true
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
