//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Without a GPU, cuda's gpuprobe ends this binary with "skipped: …" before
// any test (see package cuda).
var dev *cuda.Device

func TestMain(m *testing.M) {
	d, err := cuda.Open(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cuda.Open(0):", err)
		os.Exit(1)
	}
	dev = d
	code := m.Run()
	d.Close()
	os.Exit(code)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func batch(B, T, V int, seed uint64) [][]int32 {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([][]int32, B)
	for b := range out {
		out[b] = make([]int32, T+1)
		for i := range out[b] {
			out[b][i] = int32(r.IntN(V))
		}
	}
	return out
}

func relClose(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))+1e-7
}

// The forward pass against the CPU inference forward (model.Model.Forward)
// on the same random weights: logits within 1e-4 + 1e-3·|x| with TF32 off.
func TestForwardMatchesCPU(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	for _, fam := range []model.Family{model.Nemotron, model.Llama} {
		t.Run(string(fam), func(t *testing.T) {
			cfg, err := model.SyntheticConfig(fam, 2, 64, 4, 2, 128, 300)
			must(t, err)
			const B, T = 2, 24
			src := model.NewRandomSource(cfg, model.F32, 5)
			cpu, err := model.New(cfg, src, model.Options{})
			must(t, err)
			gm, err := gpu.NewModel(dev, cfg, src, B, T, false)
			must(t, err)
			defer gm.Free()
			tok := batch(B, T, cfg.VocabSize, 6)
			ids := make([][]int, B)
			for b := range ids {
				ids[b] = make([]int, T)
				for i := range ids[b] {
					ids[b][i] = int(tok[b][i])
				}
			}
			want, err := cpu.Forward(ids, nil)
			must(t, err)
			must(t, gm.SetBatch(tok))
			must(t, gm.Forward())
			got := make([]float32, len(want))
			must(t, dev.Download(got, gm.Logits()))
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-4+1e-3*math.Abs(float64(want[i])) {
					t.Fatalf("logit %d: %v, CPU %v", i, got[i], want[i])
				}
			}
		})
	}
}

// Three optimizer steps of the core's trainer over the device engine and
// over the CPU engine from the same weights and batches: CE training and KL
// distillation, with weight decay and clipping active. With TF32 off the
// losses and gradient norms agree to 1e-4 relative; with TF32 on, 1e-2.
func TestThreeStepsMatchDistill(t *testing.T) {
	for _, c := range []struct {
		name   string
		fam    model.Family
		kd     bool
		tf32   bool
		rel    float64
		reason string
	}{
		{"nemotron-ce", model.Nemotron, false, false, 1e-4, "LayerNorm1P, relu², partial RoPE"},
		{"nemotron-ce-refattn", model.Nemotron, false, false, 1e-4, "the reference attention kernel instead of cuBLAS"},
		{"llama-kd", model.Llama, true, false, 1e-4, "RMSNorm, SwiGLU, forward KL from a teacher"},
		{"nemotron-kd-tf32", model.Nemotron, true, true, 1e-2, "TF32 products: looser"},
		{"nemotron-ce-bf16", model.Nemotron, false, false, 2e-2, "bf16 linear layers (mixed precision)"},
		{"llama-kd-bf16", model.Llama, true, false, 2e-2, "bf16 linear layers, student and teacher"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && cuda.Emulated() && c.name != "nemotron-ce" {
				t.Skip("30 s on the CPU emulator (-short)")
			}
			must(t, dev.SetTF32(c.tf32))
			defer dev.SetTF32(true)
			cfg, err := model.SyntheticConfig(c.fam, 2, 64, 4, 2, 128, 300)
			must(t, err)
			const B, T, lr, wd, clip = 2, 32, 1e-3, 0.01, 0.5
			src := model.NewRandomSource(cfg, model.F32, 11)
			tsrc := model.NewRandomSource(cfg, model.F32, 12)
			losses := distill.Losses{CE: 1}
			var teacher *model.Model
			var gteacher *gpu.Model
			if c.kd {
				losses = distill.Losses{KL: 1, CE: 0.5}
				teacher, err = model.New(cfg, tsrc, model.Options{})
				must(t, err)
				gteacher, err = gpu.NewModel(dev, cfg, tsrc, B, T, false)
				must(t, err)
				defer gteacher.Free()
				if strings.HasSuffix(c.name, "-bf16") {
					must(t, gteacher.EnableBF16())
				}
			}
			arch, err := model.NewArch(cfg, src)
			must(t, err)
			opt := distill.DefaultOptim()
			opt.WeightDecay, opt.Clip = wd, clip
			sched := distill.Schedule{LR: lr, MinLR: lr}
			ec := distill.EngineConfig{Arch: arch, Weights: src, Teacher: teacher, Batch: B, Seq: T, Losses: losses, Optim: opt}
			cpu, err := distill.NewTrainer(device.CPU, ec, sched)
			must(t, err)
			defer cpu.Engine.Close()
			gs, err := gpu.NewModel(dev, cfg, src, B, T, true)
			must(t, err)
			defer gs.Free()
			gs.AttnTC = c.name != "nemotron-ce-refattn"
			if strings.HasSuffix(c.name, "-bf16") {
				must(t, gs.EnableBF16())
			}
			eng, err := gpu.NewEngineFor(gs, gteacher, ec)
			must(t, err)
			defer eng.Free()
			gpu := &distill.Trainer{Engine: eng, Optim: opt, Sched: sched}
			for step := 0; step < 3; step++ {
				tok := batch(B, T, cfg.VocabSize, uint64(20+step))
				want, err := cpu.TrainStep([][][]int32{tok}, false)
				must(t, err)
				got, err := gpu.TrainStep([][][]int32{tok}, false)
				must(t, err)
				t.Logf("step %d: loss %.6f (CPU %.6f), grad norm %.6f (CPU %.6f)", step+1, got.Loss, want.Loss, got.GradNorm, want.GradNorm)
				if !relClose(got.Loss, want.Loss, c.rel) || !relClose(got.CE, want.CE, c.rel) || !relClose(got.KL, want.KL, c.rel) {
					t.Errorf("step %d: loss %v (ce %v, kl %v), CPU %v (ce %v, kl %v)", step+1, got.Loss, got.CE, got.KL, want.Loss, want.CE, want.KL)
				}
				if !relClose(got.GradNorm, want.GradNorm, 10*c.rel) {
					t.Errorf("step %d: grad norm %v, CPU %v", step+1, got.GradNorm, want.GradNorm)
				}
			}
		})
	}
}

// BenchmarkTrain100M is the throughput goal: a ~100M Nemotron-shaped
// model at sequence 1024 (8 × 1024 tokens a step); it reports tokens/s and
// MFU (see gpu.Bench).
func BenchmarkTrain100M(b *testing.B) {
	cfg, err := gpu.NemotronBench100M()
	must(b, err)
	for _, c := range []struct {
		name     string
		kd, bf16 bool
	}{{"ce", false, false}, {"kd", true, false}, {"ce-bf16", false, true}, {"kd-bf16", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			r, err := gpu.Bench(dev, cfg, gpu.BenchConfig{Batch: 8, Seq: 1024, Steps: max(b.N, 3), KD: c.kd, BF16: c.bf16, Seed: 1})
			must(b, err)
			b.Logf("%+v", r)
			b.ReportMetric(r.TokensPerS, "tokens/s")
			b.ReportMetric(r.MFUTF32*100, "%MFU-tf32")
			b.ReportMetric(r.MFUBF16*100, "%MFU-bf16")
		})
	}
}
