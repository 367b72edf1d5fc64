//go:build cgo && !purego && amd64

package kernels

/*
#cgo CFLAGS: -O2
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
