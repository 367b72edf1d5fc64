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
