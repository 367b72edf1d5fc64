package kernels

import (
	"math"
	"math/rand"
	"testing"
)

func TestParSgemmRowsMatchesSgemm(t *testing.T) {
	defer SetWorkers(SetWorkers(3))
	rng := rand.New(rand.NewSource(1))
	for _, c := range []struct {
		ta, tb  bool
		m, n, k int
		beta    float32
		reason  string
	}{
		{true, false, 300, 70, 130, 0, "weight gradient dyᵀ·x, uneven blocks"},
		{false, false, 257, 64, 200, 1, "input gradient dy·W, accumulating"},
		{false, true, 400, 33, 90, 0, "x·Wᵀ"},
		{true, true, 96, 80, 100, 0.5, "both transposed"},
	} {
		a := gradRnd(rng, c.m*c.k, 1)
		b := gradRnd(rng, c.k*c.n, 1)
		lda, ldb := c.k, c.n
		if c.ta {
			lda = c.m
		}
		if c.tb {
			ldb = c.k
		}
		c0 := gradRnd(rng, c.m*c.n, 1)
		want := append([]float32(nil), c0...)
		got := append([]float32(nil), c0...)
		Sgemm(c.ta, c.tb, c.m, c.n, c.k, 1, a, lda, b, ldb, c.beta, want, c.n)
		ParSgemmRows(c.ta, c.tb, c.m, c.n, c.k, 1, a, lda, b, ldb, c.beta, got, c.n)
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-4 {
				t.Fatalf("%s: c[%d] = %v, want %v", c.reason, i, got[i], want[i])
			}
		}
	}
}
