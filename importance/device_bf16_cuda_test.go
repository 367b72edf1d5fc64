//go:build minitron_cuda || minitron_cudaemu

package importance

import (
	"context"
	"math"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// Options.BF16 (bf16-only linear weights on the device) against the f32
// CPU scores: the activations differ by bf16 rounding of the products'
// inputs, so the tolerances are looser than TestComputeDeviceCUDA's (the
// emulator measures the figures logged); the ranking-relevant structure
// (lengths, the chosen block) must agree.
func TestComputeBF16DeviceCUDA(t *testing.T) {
	cfg, err := model.SyntheticConfig(model.Nemotron, 3, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	src := model.NewRandomSource(cfg, model.F32, 21)
	src.Std = 0.1
	m, err := model.New(cfg, src, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	samples := randomSamples(4, 10, 97, 1)
	opt := Options{Aggregation: DefaultAggregation, MLPPoint: MLPPost, Batch: 2, BI: true, Loss: true, LossSamples: 3}
	want, err := Compute(context.Background(), m, samples, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Device, opt.BF16 = "cuda", true
	got, err := Compute(context.Background(), m, samples, opt)
	if err != nil {
		t.Fatal(err)
	}
	const widthTol, biTol, lossTol = 2e-2, 3e-3, 2e-3 // emulator: 5e-3, 3e-4, 1.3e-4
	worst := map[string]float64{}
	check := func(kind string, g, w []float64, tol float64) {
		if len(g) != len(w) {
			t.Fatalf("%s: %d scores, CPU %d", kind, len(g), len(w))
		}
		d := maxDiff(g, w)
		worst[kind] = math.Max(worst[kind], d)
		if d > tol || math.IsNaN(d) {
			t.Errorf("%s: max diff %.3g > %.3g\n device %v\n CPU    %v", kind, d, tol, g, w)
		}
	}
	check("channels", got.Channels, want.Channels, widthTol)
	for l := range want.Layers {
		check("heads", got.Layers[l].Heads, want.Layers[l].Heads, widthTol)
		check("neurons", got.Layers[l].Neurons, want.Layers[l].Neurons, widthTol)
	}
	for l := range want.Depth.BI {
		d := math.Abs(got.Depth.BI[l] - want.Depth.BI[l])
		worst["bi (abs)"] = math.Max(worst["bi (abs)"], d)
		if d > biTol || math.IsNaN(d) {
			t.Errorf("BI layer %d: device %v, CPU %v", l, got.Depth.BI[l], want.Depth.BI[l])
		}
	}
	for l, w := range append([]float64{want.Depth.BaseLoss}, want.Depth.DropLoss...) {
		g := append([]float64{got.Depth.BaseLoss}, got.Depth.DropLoss...)[l]
		d := math.Abs(g-w) / math.Abs(w)
		worst["loss (rel)"] = math.Max(worst["loss (rel)"], d)
		if d > lossTol || math.IsNaN(d) {
			t.Errorf("loss %d (0 = base): device %v, CPU %v", l, g, w)
		}
	}
	t.Logf("bf16 weights vs CPU f32, max diffs: %v", worst)
}
