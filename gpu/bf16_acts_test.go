//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"math"
	"testing"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// actsRun is one training engine's gradient after a micro-batch and its
// device pool's peak after an optimizer step.
type actsRun struct {
	grads map[string][]float32
	peak  int64
}

// runActs trains one step of cfg on a fresh device (so the pool's peak is
// this engine's alone) with the given student options, a teacher of the
// same shape (bf16-only with a bf16 student) and CE + KL.
func runActs(t *testing.T, cfg *model.Config, o gpu.Options, bf16 bool, tok [][]int32) actsRun {
	t.Helper()
	d, err := cuda.Open(0)
	must(t, err)
	defer d.Close()
	must(t, d.SetTF32(false))
	src := model.NewRandomSource(cfg, model.F32, 21)
	arch, err := model.NewArch(cfg, src)
	must(t, err)
	s, err := gpu.NewModelOpts(d, cfg, src, o)
	must(t, err)
	defer s.Free()
	teacher, err := gpu.NewModelOpts(d, cfg, model.NewRandomSource(cfg, model.F32, 22), gpu.Options{Batch: o.Batch, Seq: o.Seq, WeightsBF16: bf16})
	must(t, err)
	defer teacher.Free()
	ec := distill.EngineConfig{Arch: arch, Weights: src, Batch: o.Batch, Seq: o.Seq, Losses: distill.Losses{CE: 0.5, KL: 1}, Optim: distill.DefaultOptim()}
	e, err := gpu.NewEngineFor(s, teacher, ec)
	must(t, err)
	defer e.Free()
	_, err = e.Micro(tok, 0, 1)
	must(t, err)
	r := actsRun{grads: map[string][]float32{}}
	for _, ti := range e.Tensors() {
		g := make([]float32, ti.NumElements())
		must(t, e.ReadGrad(ti.Name, g))
		r.grads[ti.Name] = g
	}
	tr := &distill.Trainer{Engine: e, Optim: ec.Optim, Sched: distill.Schedule{LR: 1e-3, MinLR: 1e-3}}
	_, err = tr.TrainStep([][][]int32{tok}, false)
	must(t, err)
	r.peak = d.Pool().Peak
	return r
}

// gradDiff is the largest over tensors of ‖a−b‖₂/‖b‖₂.
func gradDiff(a, b map[string][]float32) (worst float64, at string) {
	for name, gb := range b {
		var num, den float64
		for i, v := range gb {
			x := float64(a[name][i]) - float64(v)
			num += x * x
			den += float64(v) * float64(v)
		}
		if den == 0 {
			continue
		}
		if r := math.Sqrt(num / den); r > worst {
			worst, at = r, name
		}
	}
	return worst, at
}

// A bf16 training model without recomputation stores what each layer's
// backward pass reads in bf16 (the forward runs in one shared f32 working
// set; the backward widens each layer's stores back into it): its pool
// peak is below the f32-per-layer layout's, and its gradients stay within
// 2e-2 (relative L2 per tensor) of that layout's, whose only difference is
// the rounding of the activations the backward pass reads (2⁻⁹ relative
// per value; the products already read bf16 inputs in both). Both are held
// to the f32 engine's gradients by the same rounding budget as bf16 itself:
// the bf16 stores may add at most half again to the bf16 products' own
// distance from f32.
func TestBF16StoredActivations(t *testing.T) {
	for _, c := range []struct {
		name               string
		fam                model.Family
		L, H, nH, kv, F, V int
		B, T               int
		reason             string
	}{
		{"llama-tiny", model.Llama, 2, 32, 2, 1, 64, 64, 1, 8, "the -short case: RMSNorm, SwiGLU, one KV head"},
		{"llama", model.Llama, 3, 64, 4, 2, 128, 256, 2, 16, "RMSNorm, SwiGLU (gate|up products stored), GQA, full RoPE"},
		{"qwen3", model.Qwen3, 2, 64, 4, 2, 128, 256, 2, 24, "q/k norms: each layer's pre-norm heads stored too"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && cuda.Emulated() && c.name != "llama-tiny" {
				t.Skip("slow on the CPU emulator (-short)")
			}
			cfg, err := model.SyntheticConfig(c.fam, c.L, c.H, c.nH, c.kv, c.F, c.V)
			must(t, err)
			tok := batch(c.B, c.T, c.V, 5)
			o := gpu.Options{Batch: c.B, Seq: c.T, Train: true}
			bo := o
			bo.BF16 = true
			packed := runActs(t, cfg, bo, true, tok)
			f32acts := runActs(t, cfg, gpu.WithF32Activations(bo), true, tok)
			f32 := runActs(t, cfg, o, false, tok)
			dStore, at := gradDiff(packed.grads, f32acts.grads)
			dPacked, _ := gradDiff(packed.grads, f32.grads)
			dBF16, _ := gradDiff(f32acts.grads, f32.grads)
			t.Logf("%s: pool peak bf16 stores %d, f32 activations %d (%.1f%%), f32 engine %d; gradient difference bf16 stores vs f32 activations %.3g (%s); vs f32: %.3g with bf16 stores, %.3g without",
				c.reason, packed.peak, f32acts.peak, 100*float64(packed.peak-f32acts.peak)/float64(f32acts.peak), f32.peak, dStore, at, dPacked, dBF16)
			if packed.peak >= f32acts.peak {
				t.Errorf("pool peak %d with bf16 stores, %d with f32 activations: want lower", packed.peak, f32acts.peak)
			}
			if dStore > 2e-2 {
				t.Errorf("gradient of %s differs by %.3g from the f32-activation layout's, want ≤ 2e-2", at, dStore)
			}
			if dPacked > 1.5*dBF16 {
				t.Errorf("bf16 stores put the gradients %.3g from f32, the bf16 products alone %.3g: want at most 1.5×", dPacked, dBF16)
			}
		})
	}
}

// A bf16 training model built with Options.BF16 or given EnableBF16
// afterwards takes the bf16 layout unless it recomputes; an f32 one never.
func TestBF16ActivationLayout(t *testing.T) {
	cfg, err := model.SyntheticConfig(model.Llama, 2, 32, 2, 1, 64, 64)
	must(t, err)
	src := model.NewRandomSource(cfg, model.F32, 1)
	for _, c := range []struct {
		name   string
		o      gpu.Options
		enable bool
		want   bool
		reason string
	}{
		{"f32", gpu.Options{Train: true}, false, false, "f32 training keeps f32 activations per layer"},
		{"bf16-option", gpu.Options{Train: true, BF16: true}, false, true, "bf16 stores from construction"},
		{"bf16-enable", gpu.Options{Train: true}, true, true, "EnableBF16 repacks the per-layer sets"},
		{"bf16-masters", gpu.Options{Train: true, WeightsBF16: true}, false, true, "bf16-only weights (ZeRO) likewise"},
		{"bf16-recompute", gpu.Options{Train: true, BF16: true, Recompute: true}, false, false, "recomputation keeps only the layer inputs anyway"},
		{"bf16-f32acts", gpu.WithF32Activations(gpu.Options{Train: true, BF16: true}), false, false, "the reference layout"},
	} {
		c.o.Batch, c.o.Seq = 1, 8
		m, err := gpu.NewModelOpts(dev, cfg, src, c.o)
		must(t, err)
		if c.enable {
			must(t, m.EnableBF16())
		}
		if got := m.ActivationsPacked(); got != c.want {
			t.Errorf("%s: bf16 activation layout %v, want %v (%s)", c.name, got, c.want, c.reason)
		}
		m.Free()
	}
}
