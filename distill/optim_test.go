package distill

import (
	"math"
	"testing"
)

// AdamW against torch.optim.AdamW's update written out in float64 (two
// steps, with and without decay exclusion), and the schedule's shape.
func TestAdamWMatchesTorchFormula(t *testing.T) {
	for _, decayAll := range []bool{true, false} {
		params := []*Param{{Name: "w", Data: []float32{0.5, -1, 2}}, {Name: "n", Data: []float32{1, 0.25}, NoDecay: true}}
		grads := [][]float32{{0.1, -0.2, 0.3}, {-0.5, 0.05}}
		o := NewAdamW(5, 0.1)
		o.DecayAll = decayAll
		want := []float64{0.5, -1, 2, 1, 0.25}
		m, v := make([]float64, 5), make([]float64, 5)
		flat := []float64{0.1, -0.2, 0.3, -0.5, 0.05}
		for step := 1; step <= 2; step++ {
			lr := 1e-2 * float64(step)
			o.Update(params, grads, []int{0, 3}, lr)
			for i := range want {
				wd := 0.1
				if i >= 3 && !decayAll {
					wd = 0
				}
				want[i] *= 1 - lr*wd
				m[i] = 0.9*m[i] + 0.1*flat[i]
				v[i] = 0.999*v[i] + 0.001*flat[i]*flat[i]
				mh := m[i] / (1 - math.Pow(0.9, float64(step)))
				denom := math.Sqrt(v[i])/math.Sqrt(1-math.Pow(0.999, float64(step))) + 1e-8
				want[i] -= lr * mh / denom
			}
		}
		got := append(append([]float32{}, params[0].Data...), params[1].Data...)
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-6 {
				t.Errorf("decayAll=%t: param %d = %.7f, want %.7f", decayAll, i, got[i], want[i])
			}
		}
	}
	sc := Schedule{LR: 1, MinLR: 0.1, Warmup: 4, Steps: 14}
	for _, c := range []struct {
		step   int
		want   float64
		reason string
	}{
		{0, 0.25, "warmup starts at LR/W"}, {3, 1, "warmup reaches LR"}, {9, 0.55, "half-way through the cosine"},
		{14, 0.1, "ends at MinLR"}, {20, 0.1, "stays at MinLR"},
	} {
		if got := sc.At(c.step); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: At(%d) = %v, want %v", c.reason, c.step, got, c.want)
		}
	}
	g := [][]float32{{3}, {4}}
	if n := ClipGrads(g, 1); n != 5 || math.Abs(float64(g[0][0])-0.6) > 1e-6 || math.Abs(float64(g[1][0])-0.8) > 1e-6 {
		t.Errorf("clip: norm %v, grads %v", n, g)
	}
}
