//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"math"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// distill.NewPlan's per-GPU total against the pool's measured peak of the
// engine it describes, after an optimizer step (every buffer and every
// kernel temporary has been allocated by then): within 10%.
func TestPlanMatchesPoolPeak(t *testing.T) {
	for _, c := range []struct {
		name               string
		fam                model.Family
		L, H, nH, kv, F, V int
		B, T               int
		kd                 bool
		precision          string
		recompute          bool
		chunk              int
		accum              int
		offload            bool
		reason             string
	}{
		{"nemotron-ce", model.Nemotron, 3, 128, 4, 2, 384, 1000, 2, 64, false, "f32", false, 0, 1, false, "training from scratch: weights, gradients, moments, every layer's activations"},
		{"llama-kd-bf16-accum", model.Llama, 2, 128, 4, 2, 256, 1500, 2, 48, true, "bf16", false, 0, 2, false, "KL + CE from a bf16-only teacher, bf16 shadows and copies, the accumulation arena"},
		{"nemotron-kd-recompute-chunk", model.Nemotron, 2, 64, 4, 2, 192, 1000, 2, 48, true, "f32", true, 40, 1, false, "recomputation (one layer's activations) and logits in chunks of 40 of the 128 tokens"},
		{"llama-kd-bf16-offload", model.Llama, 2, 128, 4, 2, 256, 1500, 2, 48, true, "bf16", true, 64, 1, true, "optimizer offload: no masters or moments on the device, the matrices in bf16 only, bf16 gradients"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && cuda.Emulated() && c.name != "nemotron-kd-recompute-chunk" {
				t.Skip("about 40 s on the CPU emulator (-short)")
			}
			cfg, err := model.SyntheticConfig(c.fam, c.L, c.H, c.nH, c.kv, c.F, c.V)
			must(t, err)
			src := model.NewRandomSource(cfg, model.F32, 3)
			arch, err := model.NewArch(cfg, src)
			must(t, err)
			losses := distill.Losses{CE: 1}
			var teacher *model.Model
			var tcfg *model.Config
			if c.kd {
				losses = distill.Losses{CE: 0.5, KL: 1}
				tcfg, err = model.SyntheticConfig(c.fam, c.L+1, c.H, c.nH, c.kv, 2*c.F, c.V)
				must(t, err)
				teacher, err = model.New(tcfg, model.NewRandomSource(tcfg, model.F32, 4), model.Options{})
				must(t, err)
			}
			ec := distill.EngineConfig{Arch: arch, Weights: src, Teacher: teacher, Batch: c.B, Seq: c.T, Losses: losses,
				Optim: distill.DefaultOptim(), BF16: c.precision == "bf16", Recompute: c.recompute, LogitChunk: c.chunk, Offload: c.offload}
			tr, err := distill.NewTrainer(device.CUDA, ec, distill.Schedule{LR: 1e-3, MinLR: 1e-3})
			must(t, err)
			defer tr.Engine.Close()
			for step := 0; step < 1; step++ {
				micro := make([][][]int32, c.accum)
				for i := range micro {
					micro[i] = batch(c.B, c.T, c.V, uint64(10*step+i))
				}
				_, err := tr.TrainStep(micro, false)
				must(t, err)
			}
			peak := tr.Engine.(*gpu.Engine).S.Device().Pool().Peak
			plan, err := distill.NewPlan(distill.PlanConfig{Student: cfg, Teacher: tcfg, Seq: c.T, Batch: c.B, Accum: c.accum,
				Precision: c.precision, Recompute: c.recompute, LogitChunk: c.chunk, Offload: c.offload, Losses: losses})
			must(t, err)
			rel := float64(plan.PerGPUBytes-peak) / float64(peak)
			t.Logf("plan %d bytes, pool peak %d (%+.2f%%); parts %v", plan.PerGPUBytes, peak, 100*rel, plan.Parts)
			if math.Abs(rel) > 0.10 {
				t.Errorf("plan %d bytes is %+.1f%% off the pool's peak %d", plan.PerGPUBytes, 100*rel, peak)
			}
		})
	}
}
