package kernels

import (
	"math"
	"math/rand"
	"testing"
)

func naiveGemm(transA, transB bool, m, n, k int, a, b []float32) []float32 {
	c := make([]float32, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*m+i]
				} else {
					av = a[i*k+p]
				}
				if transB {
					bv = b[j*k+p]
				} else {
					bv = b[p*n+j]
				}
				s += float64(av) * float64(bv)
			}
			c[i*n+j] = float32(s)
		}
	}
	return c
}

func TestSgemmMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, tc := range []struct {
		ta, tb  bool
		m, n, k int
		reason  string
	}{
		{false, false, 3, 5, 7, "plain product"},
		{false, true, 4, 6, 8, "HF [out,in] weight layout (x·Wᵀ)"},
		{true, false, 5, 3, 9, "weight gradient layout (dyᵀ·x)"},
		{true, true, 2, 2, 2, "both transposed"},
	} {
		a := make([]float32, tc.m*tc.k)
		b := make([]float32, tc.k*tc.n)
		for i := range a {
			a[i] = rng.Float32() - 0.5
		}
		for i := range b {
			b[i] = rng.Float32() - 0.5
		}
		lda, ldb := tc.k, tc.n
		if tc.ta {
			lda = tc.m
		}
		if tc.tb {
			ldb = tc.k
		}
		c := make([]float32, tc.m*tc.n)
		Sgemm(tc.ta, tc.tb, tc.m, tc.n, tc.k, 1, a, lda, b, ldb, 0, c, tc.n)
		want := naiveGemm(tc.ta, tc.tb, tc.m, tc.n, tc.k, a, b)
		for i := range c {
			if math.Abs(float64(c[i]-want[i])) > 1e-5 {
				t.Fatalf("%s: c[%d]=%v want %v", tc.reason, i, c[i], want[i])
			}
		}
	}
}
