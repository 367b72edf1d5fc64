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

// Recomputing each layer in the backward pass (Options.Recompute) gives
// the gradients of stored activations bit for bit: the same kernels run on
// the same inputs. Two optimizer steps, so the second step's gradients also
// start from identically updated weights. In bf16 the stored model keeps
// its activations in f32 (WithF32Activations): the bf16 layout rounds what
// the backward pass reads (TestBF16StoredActivations), recomputation does
// not.
func TestRecomputeGradientsBitIdentical(t *testing.T) {
	for _, c := range []struct {
		name   string
		fam    model.Family
		kd     bool
		bf16   bool
		reason string
	}{
		{"nemotron-ce", model.Nemotron, false, false, "LayerNorm1P with biases, relu², partial RoPE, f32"},
		{"llama-kd-bf16", model.Llama, true, true, "RMSNorm, SwiGLU, KL from a bf16 teacher, bf16 products and their copies"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && cuda.Emulated() && c.name != "nemotron-ce" {
				t.Skip("slow on the CPU emulator (-short)")
			}
			cfg, err := model.SyntheticConfig(c.fam, 3, 64, 4, 2, 128, 300)
			must(t, err)
			const B, T = 2, 24
			src := model.NewRandomSource(cfg, model.F32, 7)
			arch, err := model.NewArch(cfg, src)
			must(t, err)
			losses := distill.Losses{CE: 1}
			var teacher *gpu.Model
			if c.kd {
				losses = distill.Losses{CE: 0.5, KL: 1}
				teacher, err = gpu.NewModelOpts(dev, cfg, model.NewRandomSource(cfg, model.F32, 8), gpu.Options{Batch: B, Seq: T, WeightsBF16: c.bf16})
				must(t, err)
				defer teacher.Free()
			}
			ec := distill.EngineConfig{Arch: arch, Weights: src, Batch: B, Seq: T, Losses: losses, Optim: distill.DefaultOptim()}
			var engines [2]*gpu.Engine
			var trainers [2]*distill.Trainer
			for k, rc := range []bool{false, true} {
				o := gpu.Options{Batch: B, Seq: T, Train: true, Recompute: rc}
				if c.bf16 && !rc {
					o = gpu.WithF32Activations(o)
				}
				s, err := gpu.NewModelOpts(dev, cfg, src, o)
				must(t, err)
				defer s.Free()
				if c.bf16 {
					must(t, s.EnableBF16())
				}
				engines[k], err = gpu.NewEngineFor(s, teacher, ec)
				must(t, err)
				defer engines[k].Free()
				trainers[k] = &distill.Trainer{Engine: engines[k], Optim: ec.Optim, Sched: distill.Schedule{LR: 1e-2, MinLR: 1e-2}}
			}
			steps := 2
			if testing.Short() && cuda.Emulated() {
				steps = 1
			}
			for step := 0; step < steps; step++ {
				tok := batch(B, T, cfg.VocabSize, uint64(30+step))
				var grads [2]map[string][]float32
				var ms [2]distill.StepMetrics
				for k, e := range engines {
					// the gradient before the update: one micro-batch by hand
					_, err := e.Micro(tok, 0, 1)
					must(t, err)
					grads[k] = map[string][]float32{}
					for _, ti := range e.Tensors() {
						g := make([]float32, ti.NumElements())
						must(t, e.ReadGrad(ti.Name, g))
						grads[k][ti.Name] = g
					}
					ms[k], err = trainers[k].TrainStep([][][]int32{tok}, false)
					must(t, err)
				}
				for name, g := range grads[0] {
					for j, v := range g {
						if math.Float32bits(v) != math.Float32bits(grads[1][name][j]) {
							t.Fatalf("step %d: gradient of %s[%d]: %v stored, %v recomputed", step+1, name, j, v, grads[1][name][j])
						}
					}
				}
				if ms[0].Loss != ms[1].Loss || ms[0].GradNorm != ms[1].GradNorm {
					t.Fatalf("step %d: loss %v / grad norm %v stored, %v / %v recomputed", step+1, ms[0].Loss, ms[0].GradNorm, ms[1].Loss, ms[1].GradNorm)
				}
			}
		})
	}
}
