//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"math"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
)

// extrasConfigs are tiny configs with biases or q/k norms: qwen2 (q/k/v
// biases, no o_proj bias, tied embeddings), qwen3 (q/k norms over an
// explicit head_dim 16 ≠ hidden/heads), llama with attention_bias and
// mlp_bias (every projection biased).
func extrasConfigs(t *testing.T) []struct {
	name   string
	cfg    *model.Config
	reason string
} {
	qwen2, err := model.SyntheticConfig(model.Qwen2, 2, 32, 4, 2, 48, 97)
	must(t, err)
	qwen2.TieWordEmbeddings = true
	qwen3, err := model.SyntheticConfig(model.Qwen3, 2, 32, 4, 2, 48, 97)
	must(t, err)
	qwen3.HeadDim = 16
	biased, err := model.SyntheticConfig(model.Llama, 2, 32, 4, 2, 48, 97)
	must(t, err)
	biased.AttentionBias, biased.MLPBias = true, true
	return []struct {
		name   string
		cfg    *model.Config
		reason string
	}{
		{"qwen2", qwen2, "q/k/v biases, tied embeddings"},
		{"qwen3", qwen3, "q_norm/k_norm before RoPE"},
		{"llama-bias", biased, "attention_bias and mlp_bias"},
	}
}

// One optimizer step of the device engine and of the CPU engine on the
// same weights and batch (CE 0.5 + KL from a device/CPU teacher, TF32
// off): the loss to 1e-5 relative, the gradient norm to 1e-4, and every
// tensor's first moment, (1−β1)·gradient after one step, to 1e-4 of the
// tensor's largest, biases and q/k norms included (the emulator measures
// ≤ 2e-6). With bf16 products (EnableBF16, student and teacher) the loss
// and gradient norm to 2e-2 (gpu's bf16 tolerance; measured ≤ 3e-4) and
// the moments to 1e-1 of the tensor's largest (measured ≤ 2.6e-2). The
// weights are held only to 2·lr (plus 1e-6 for the f32 rounding of w±lr):
// AdamW's first update is ±lr wherever a gradient is near 0, whose sign a
// rounding can flip.
func TestExtrasGradientsMatchCPU(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	for _, c := range extrasConfigs(t) {
		for _, bf16 := range []bool{false, true} {
			name := c.name
			if bf16 {
				name += "-bf16"
			}
			t.Run(name, func(t *testing.T) {
				cfg := c.cfg
				const B, T = 2, 8
				src := model.NewRandomSource(cfg, model.F32, 11)
				src.Std = 0.2 // biases and norms far enough from 0 and 1 to matter
				tsrc := model.NewRandomSource(cfg, model.F32, 12)
				teacher, err := model.New(cfg, tsrc, model.Options{})
				must(t, err)
				defer teacher.Close()
				gteacher, err := gpu.NewModel(dev, cfg, tsrc, B, T, false)
				must(t, err)
				defer gteacher.Free()
				if bf16 {
					must(t, gteacher.EnableBF16())
				}
				arch, err := model.NewArch(cfg, src)
				must(t, err)
				opt := distill.DefaultOptim()
				sched := distill.Schedule{LR: 1e-3, MinLR: 1e-3}
				ec := distill.EngineConfig{Arch: arch, Weights: src, Teacher: teacher, Batch: B, Seq: T,
					Losses: distill.Losses{KL: 1, CE: 0.5, Temperature: 2}, Optim: opt}
				cpu, err := distill.NewTrainer(device.CPU, ec, sched)
				must(t, err)
				defer cpu.Engine.Close()
				gs, err := gpu.NewModel(dev, cfg, src, B, T, true)
				must(t, err)
				defer gs.Free()
				if bf16 {
					must(t, gs.EnableBF16())
				}
				eng, err := gpu.NewEngineFor(gs, gteacher, ec)
				must(t, err)
				defer eng.Free()
				gtr := &distill.Trainer{Engine: eng, Optim: opt, Sched: sched}
				tok := batch(B, T, cfg.VocabSize, 30)
				want, err := cpu.TrainStep([][][]int32{tok}, false)
				must(t, err)
				got, err := gtr.TrainStep([][][]int32{tok}, false)
				must(t, err)
				t.Logf("%s: loss %.7f (CPU %.7f), grad norm %.6f (CPU %.6f)", c.reason, got.Loss, want.Loss, got.GradNorm, want.GradNorm)
				relLoss, relNorm, relMom := 1e-5, 1e-4, 1e-4
				if bf16 {
					relLoss, relNorm, relMom = 2e-2, 2e-2, 1e-1
				}
				if !relClose(got.Loss, want.Loss, relLoss) || !relClose(got.GradNorm, want.GradNorm, relNorm) {
					t.Errorf("%s: loss %v grad norm %v, CPU %v %v", c.reason, got.Loss, got.GradNorm, want.Loss, want.GradNorm)
				}
				extra := map[string]bool{}
				for l := 0; l < cfg.NumLayers; l++ {
					w := arch.Layer(l)
					for _, n := range []string{w.QBias, w.KBias, w.VBias, w.OBias, w.QNorm, w.KNorm, w.GateBias, w.UpBias, w.DownBias} {
						extra[n] = n != ""
					}
				}
				extras, worst := 0, 0.0
				for _, ti := range arch.Tensors {
					n := ti.NumElements()
					gw, gm, cw, cm := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
					must(t, eng.ReadState(ti.Name, gw, gm, nil))
					must(t, cpu.Engine.ReadState(ti.Name, cw, cm, nil))
					var scale, dm, dw float64
					for i := range cm {
						scale = math.Max(scale, math.Abs(float64(cm[i])))
						dm = math.Max(dm, math.Abs(float64(gm[i]-cm[i])))
						dw = math.Max(dw, math.Abs(float64(gw[i]-cw[i])))
					}
					if extra[ti.Name] {
						extras++
					}
					if scale == 0 || dm > relMom*scale || dw > 2*sched.LR+1e-6 {
						t.Errorf("%s: %s: first moment differs by %.3g (largest %.3g), weights by %.3g", c.reason, ti.Name, dm, scale, dw)
					}
					worst = math.Max(worst, dm/scale)
				}
				t.Logf("largest first-moment difference relative to its tensor's largest: %.3g", worst)
				if extras == 0 {
					t.Errorf("%s: no bias or q/k norm among the tensors", c.reason)
				}
			})
		}
	}
}
