package distill

import (
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// AdamW against torch.optim.AdamW's update written out in float64 (two
// steps, with and without decay exclusion), and the schedule's shape.
func TestAdamWMatchesTorchFormula(t *testing.T) {
	for _, decayAll := range []bool{true, false} {
		params := [][]float32{{0.5, -1, 2}, {1, 0.25}}
		infos := []model.TensorInfo{{Name: "w", Shape: []int{1, 3}}, {Name: "n", Shape: []int{2}}}
		grads := [][]float32{{0.1, -0.2, 0.3}, {-0.5, 0.05}}
		ms, vs := [][]float32{make([]float32, 3), make([]float32, 2)}, [][]float32{make([]float32, 3), make([]float32, 2)}
		o := DefaultOptim()
		o.WeightDecay, o.DecayAll = 0.1, decayAll
		want := []float64{0.5, -1, 2, 1, 0.25}
		m, v := make([]float64, 5), make([]float64, 5)
		flat := []float64{0.1, -0.2, 0.3, -0.5, 0.05}
		for step := 1; step <= 2; step++ {
			lr := 1e-2 * float64(step)
			for i := range params {
				o.Scalars(lr, step, infos[i]).Apply(params[i], grads[i], ms[i], vs[i])
			}
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
		got := append(append([]float32{}, params[0]...), params[1]...)
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
	for _, c := range []struct {
		clip, norm float64
		want       float32
		reason     string
	}{
		{1, 5, float32(1 / (5 + 1e-6)), "a norm above the limit scales to it"},
		{1, 0.5, 1, "a norm under the limit is left alone"},
		{0, 5, 1, "Clip 0 disables clipping"},
	} {
		if got := (Optim{Clip: c.clip}).ClipScale(c.norm); got != c.want {
			t.Errorf("%s: ClipScale(%v) with Clip %v = %v, want %v", c.reason, c.norm, c.clip, got, c.want)
		}
	}
}

// Weight decay spares every vector (norms, biases, qwen3's q/k norms) and
// the embedding unless DecayAll, as Hugging Face's no_decay lists do, and
// decays every other matrix: checked over the tensors of each biased
// architecture.
func TestDecayExclusionOfBiasesAndQKNorms(t *testing.T) {
	o := DefaultOptim()
	o.WeightDecay = 0.1
	const lr = 1e-2
	for _, name := range []string{"qwen2", "qwen3", "llama-bias"} {
		cfg := biasedConfig(t, name)
		arch, err := model.NewArch(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		extras := 0
		for _, ti := range arch.Tensors {
			vector := len(ti.Shape) == 1
			spared := vector || ti.Name == model.EmbedTensor
			if strings.HasSuffix(ti.Name, ".bias") || strings.HasSuffix(ti.Name, "_norm.weight") && strings.Contains(ti.Name, "self_attn.") {
				extras++
				if !vector {
					t.Errorf("%s: %s has shape %v, not a vector", name, ti.Name, ti.Shape)
				}
			}
			want := float32(1 - lr*o.WeightDecay)
			if spared {
				want = 1
			}
			if got := o.Scalars(lr, 1, ti).Decay; got != want {
				t.Errorf("%s: %s: decay factor %v, want %v", name, ti.Name, got, want)
			}
			o.DecayAll = true
			if got := o.Scalars(lr, 1, ti).Decay; got != float32(1-lr*o.WeightDecay) {
				t.Errorf("%s: %s with DecayAll: decay factor %v", name, ti.Name, got)
			}
			o.DecayAll = false
		}
		if extras == 0 {
			t.Errorf("%s: no biases or q/k norms among %d tensors", name, len(arch.Tensors))
		}
	}
}
