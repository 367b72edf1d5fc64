package kernels

import (
	"math"
	"math/rand"
	"testing"
)

// Switching OpenBLAS's kernel set keeps products right (and the previous
// set is restored afterwards).
func TestSetBLASCore(t *testing.T) {
	orig := BLASCore()
	defer SetBLASCore(orig)
	rng := rand.New(rand.NewSource(1))
	a, b := gradRnd(rng, 64*48, 1), gradRnd(rng, 48*40, 1)
	want := naiveGemm(false, false, 64, 40, 48, a, b)
	for _, core := range []string{"auto", "Haswell"} {
		got, err := SetBLASCore(core)
		if err != nil {
			if BLASBackend() != "openblas" {
				return // pure-Go build: nothing to switch
			}
			t.Fatalf("SetBLASCore(%q): %v", core, err)
		}
		t.Logf("%s → %s", core, got)
		c := make([]float32, 64*40)
		Sgemm(false, false, 64, 40, 48, 1, a, 48, b, 40, 0, c, 40)
		for i := range c {
			if math.Abs(float64(c[i]-want[i])) > 1e-4 {
				t.Fatalf("core %s: c[%d] = %v, want %v", got, i, c[i], want[i])
			}
		}
	}
	if _, err := SetBLASCore("NoSuchCore"); err == nil && BLASBackend() == "openblas" {
		t.Error("an unknown core name must be an error")
	}
}

func TestBetterCore(t *testing.T) {
	for _, tc := range []struct {
		current      string
		avx512, avx2 bool
		want         string
		reason       string
	}{
		{"Prescott", true, true, "SkylakeX", "OpenBLAS 0.3.21 falls back to Prescott on Emerald Rapids, which has AVX-512"},
		{"Prescott", false, true, "Haswell", "an AVX2 machine it does not know"},
		{"Core2", false, false, "", "no AVX2: the fallback is the best there is"},
		{"Haswell", true, true, "", "a recognised kernel set is kept (it may be the user's choice)"},
		{"SkylakeX", true, true, "", "already AVX-512"},
		{"Zen", false, true, "", "AMD's own kernels are kept"},
		{"gonum", true, true, "", "the pure-Go BLAS has no kernel sets"},
	} {
		if got := betterCore(tc.current, tc.avx512, tc.avx2); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.reason, got, tc.want)
		}
	}
}
