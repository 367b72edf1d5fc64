//go:build minitron_cuda || minitron_cudaemu

package distill_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/device"
	. "github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/gpu" // registers the cuda engine
	"github.com/minitron-dev/minitron/model"
)

func relClose(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))+1e-7
}

// cudaRunConfig is a 3-step run of a tiny model (with a teacher for kd) on
// the given device; the same Config on both devices gives the same data,
// schedule and initial weights.
func cudaRunConfig(t *testing.T, fam string, kd bool, dev device.Kind, out string) (Config, *[]StepMetrics) {
	t.Helper()
	cfg := TinyConfig(t, fam, 2, 32, 4, 2, 48, 64)
	src := Corpus(4, 20, 200, 64)
	var ms []StepMetrics
	c := Config{StudentConfig: cfg, RandomInit: true, Train: Sampler(t, src, 16, 3),
		ValSampler: Sampler(t, src, 16, 77), ValBatches: 2,
		SeqLen: 16, MicroBatch: 2, Steps: 3, LR: 3e-3, MinLR: 1e-4, Warmup: 1,
		WeightDecay: 0.01, Clip: 0.5, Seed: 9, Out: out, Device: dev,
		OnStep: func(m StepMetrics) { ms = append(ms, m) }}
	if kd {
		tsrc := model.NewRandomSource(cfg, model.F32, 21)
		teacher, err := model.New(cfg, tsrc, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c.Teacher = teacher
		c.Losses = Losses{CE: 0.5, KL: 1, Temperature: 2}
	}
	return c, &ms
}

// The same 3-step Run on the CPU and through gpu (Device "cuda"):
// per-step losses within gpu's own test tolerances (TF32 off: 1e-4
// relative; TF32 on: 1e-2; 10× that for the gradient norm), the same
// validation losses, and checkpoints of the same tensors whose weights
// differ by 1e-4 at most (TF32, bf16: by at most 2·lr per step, as AdamW's
// update is about ±lr wherever a gradient is near 0, so a tiny gradient
// difference can flip its sign).
func TestRunCUDAMatchesCPU(t *testing.T) {
	for _, tc := range []struct {
		name, fam string
		kd, tf32  bool
		bf16      bool
		accum     int
		rel       float64
		reason    string
	}{
		{"nemotron-ce", "nemotron", false, false, false, 1, 1e-4, "LayerNorm1P, relu², CE only (minitron train)"},
		{"llama-kd", "llama", true, false, false, 1, 1e-4, "RMSNorm, SwiGLU, CE 0.5 + KL at τ 2 from a device teacher"},
		{"llama-kd-accum3", "llama", true, false, false, 3, 1e-4, "gradient accumulation: 3 micro-batches a step"},
		{"nemotron-rkl", "nemotron", true, false, false, 1, 1e-4, "CE + forward KL + reverse KL (three terms)"},
		{"llama-topk", "llama", true, false, false, 1, 1e-4, "CE + forward KL on the teacher's top-8 logits"},
		{"llama-kd-tf32", "llama", true, true, false, 1, 1e-2, "the default TF32 products: looser"},
		{"nemotron-kd-bf16", "nemotron", true, false, true, 1, 2e-2, "bf16 linear layers, student and teacher (gpu's bf16 tolerance)"},
		{"llama-kd-intermediate", "llama", true, false, false, 2, 1e-4, "CE + KL + the intermediate-state loss on layer 0 and on the final norm, with its learned projection, over 2 micro-batches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// the case's settings, the same on both devices
			setup := func(c *Config) {
				c.GlobalBatch = tc.accum * c.MicroBatch
				if strings.HasSuffix(tc.name, "-rkl") {
					c.Losses.ReverseKL = 0.7
				}
				if strings.HasSuffix(tc.name, "-topk") {
					c.Losses.TopK = 8
				}
				if strings.HasSuffix(tc.name, "-intermediate") {
					c.Losses.Intermediate = []LayerPair{{0, 0}, {2, 2}}
				}
			}
			cc, want := cudaRunConfig(t, tc.fam, tc.kd, "cpu", filepath.Join(dir, "cpu"))
			setup(&cc)
			wres, err := Run(context.Background(), cc)
			if err != nil {
				t.Fatal(err)
			}
			gc, got := cudaRunConfig(t, tc.fam, tc.kd, "cuda", filepath.Join(dir, "cuda"))
			gc.NoTF32, gc.BF16 = !tc.tf32, tc.bf16
			setup(&gc)
			gres, err := Run(context.Background(), gc)
			if err != nil {
				t.Fatal(err)
			}
			rel := tc.rel
			if len(*got) != 3 || len(*want) != 3 {
				t.Fatalf("steps: cuda %d, cpu %d", len(*got), len(*want))
			}
			for i, w := range *want {
				g := (*got)[i]
				t.Logf("step %d: loss %.7f (cpu %.7f) ce %.7f (%.7f) kl %.7f (%.7f) rkl %.7f (%.7f) is %.7f (%.7f) α %.5f (%.5f) grad norm %.6f (%.6f) lr %g (%g)",
					i+1, g.Loss, w.Loss, g.CE, w.CE, g.KL, w.KL, g.RKL, w.RKL, g.IS, w.IS, g.ISAlpha, w.ISAlpha, g.GradNorm, w.GradNorm, g.LR, w.LR)
				if g.Step != w.Step || g.LR != w.LR {
					t.Errorf("step %d: step/lr %d/%g, cpu %d/%g", i+1, g.Step, g.LR, w.Step, w.LR)
				}
				if !relClose(g.Loss, w.Loss, rel) || !relClose(g.CE, w.CE, rel) || !relClose(g.KL, w.KL, rel) || !relClose(g.RKL, w.RKL, rel) ||
					!relClose(g.IS, w.IS, rel) || !relClose(g.ISAlpha, w.ISAlpha, rel) {
					t.Errorf("step %d: loss %v (ce %v, kl %v), cpu %v (ce %v, kl %v)", i+1, g.Loss, g.CE, g.KL, w.Loss, w.CE, w.KL)
				}
				if !relClose(g.GradNorm, w.GradNorm, 10*rel) {
					t.Errorf("step %d: grad norm %v, cpu %v", i+1, g.GradNorm, w.GradNorm)
				}
			}
			t.Logf("val loss %.7f (cpu %.7f), val kl %.7f (cpu %.7f)", gres.ValLoss, wres.ValLoss, gres.ValKL, wres.ValKL)
			if !relClose(gres.ValLoss, wres.ValLoss, rel) || !relClose(gres.ValKL, wres.ValKL, rel) {
				t.Errorf("validation: loss %v kl %v, cpu %v kl %v", gres.ValLoss, gres.ValKL, wres.ValLoss, wres.ValKL)
			}
			// The checkpoints are the same files with (nearly) the same weights.
			if filepath.Base(gres.Checkpoint) != filepath.Base(wres.Checkpoint) {
				t.Fatalf("checkpoints %s and %s", gres.Checkpoint, wres.Checkpoint)
			}
			tol := 1e-4 // f32 products: the weights agree to float rounding
			if tc.tf32 || tc.bf16 {
				tol = 2 * cc.LR * float64(cc.Steps)
			}
			compareCheckpoints(t, wres.Checkpoint, gres.Checkpoint, tol)
		})
	}
}

func compareCheckpoints(t *testing.T, a, b string, tol float64) {
	t.Helper()
	ca, err := model.OpenCheckpoint(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := model.OpenCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	if strings.Join(ca.Names(), ",") != strings.Join(cb.Names(), ",") {
		t.Fatalf("tensors differ: %v vs %v", ca.Names(), cb.Names())
	}
	worst := 0.0
	for _, n := range ca.Names() {
		ia, _ := ca.Info(n)
		x, y := make([]float32, ia.NumElements()), make([]float32, ia.NumElements())
		if err := ca.ReadF32(n, x); err != nil {
			t.Fatal(err)
		}
		if err := cb.ReadF32(n, y); err != nil {
			t.Fatal(err)
		}
		for i := range x {
			worst = max(worst, math.Abs(float64(x[i]-y[i])))
		}
	}
	t.Logf("largest weight difference between the checkpoints: %.3g", worst)
	if worst > tol {
		t.Errorf("checkpoint weights differ by %g > %g", worst, tol)
	}
}

// A run interrupted after step 2 resumes from its checkpoint (weights and
// AdamW moments streamed out of the engine) on the other engine or the same
// one — cuda→cuda, cuda→cpu, cpu→cuda — and continues with the losses of
// the uninterrupted cuda run.
// With the intermediate-state loss, its projection and moments travel
// through the checkpoint too. With bf16 and optimizer offload the master
// weights and moments come from (and go back to) host memory, between
// cuda runs alone (the other engines train other precisions).
func TestRunCUDAResume(t *testing.T) {
	for _, c := range []struct {
		name                  string
		intermediate, offload bool
	}{{"ce", false, false}, {"kd-intermediate", true, false}, {"ce-bf16-offload", false, true}} {
		t.Run(c.name, func(t *testing.T) { testRunCUDAResume(t, c.intermediate, c.offload) })
	}
}

func testRunCUDAResume(t *testing.T, intermediate, offload bool) {
	dir := t.TempDir()
	base := func(dev device.Kind, out string) (Config, *[]StepMetrics) {
		c, ms := cudaRunConfig(t, "llama", intermediate, dev, out)
		c.Steps, c.SaveEvery, c.ValSampler, c.NoTF32 = 4, 2, nil, true
		if intermediate {
			c.Losses.Intermediate = []LayerPair{{1, 1}, {2, 2}}
		}
		c.BF16, c.Offload = offload, offload
		return c, ms
	}
	c, want := base("cuda", filepath.Join(dir, "full"))
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	resumes := []struct{ from, resumeOn device.Kind }{{"cuda", "cuda"}, {"cuda", "cpu"}, {"cpu", "cuda"}}
	if offload {
		resumes = resumes[:1]
	}
	for _, tc := range resumes {
		resumeOn := tc.resumeOn
		out := filepath.Join(dir, "resume-"+string(tc.from)+"-"+string(resumeOn))
		ctx, cancel := context.WithCancel(context.Background())
		c, _ := base(tc.from, out)
		inner := c.OnStep
		c.OnStep = func(m StepMetrics) {
			inner(m)
			if m.Step == 2 {
				cancel()
			}
		}
		res, err := Run(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Interrupted || res.Steps != 2 {
			t.Fatalf("interrupted run: %+v", res)
		}
		c, got := base(resumeOn, out)
		c.Resume = true
		if res, err = Run(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if res.Steps != 4 || len(*got) != 2 {
			t.Fatalf("interrupted on %s, resumed on %s: %d steps, %d metrics", tc.from, resumeOn, res.Steps, len(*got))
		}
		for i, g := range *got {
			w := (*want)[2+i]
			t.Logf("interrupted on %s, resumed on %s, step %d: loss %.7f (uninterrupted cuda %.7f) is %.7f (%.7f)", tc.from, resumeOn, g.Step, g.Loss, w.Loss, g.IS, w.IS)
			if g.Step != w.Step || !relClose(g.Loss, w.Loss, 1e-4) || !relClose(g.GradNorm, w.GradNorm, 1e-3) || !relClose(g.IS, w.IS, 1e-4) {
				t.Errorf("resumed on %s, step %d: loss %v grad norm %v, uninterrupted %v / %v", resumeOn, g.Step, g.Loss, g.GradNorm, w.Loss, w.GradNorm)
			}
		}
	}
}

// Settings the cuda engine cannot run are refused with the option's name.
func TestRunCUDAUnsupported(t *testing.T) {
	for _, tc := range []struct {
		flag   string
		set    func(*Config)
		reason string
	}{
		{"TopKCache", func(c *Config) { c.Losses.TopK, c.TopKCache = 4, "cache" }, "the device teacher does not use the cache"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			c, _ := cudaRunConfig(t, "llama", true, "cuda", "")
			tc.set(&c)
			_, err := Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("%s (%s): error %v, want one naming %s", tc.flag, tc.reason, err, tc.flag)
			}
		})
	}
}

// A NaN weight: the device run stops at step 1 naming it, or with
// SkipNonFin skips every step without updating, as the CPU run does.
func TestRunCUDANonFinite(t *testing.T) { CheckNonFiniteLoss(t, "cuda") }

// A device run keeps the training state on the device: the host holds
// about one tensor at a time (uploads, checkpoint writes, resume reads),
// not the model. At the bench goal shape (gpu.NemotronBench100M, ~99M
// parameters, its largest tensors the 32000×768 embedding and head) a run
// of 2 steps that checkpoints, then resumes for a third, must keep its
// live Go heap below 2.5× the largest tensor plus 64 MiB; a host copy of
// the weights alone would be 4× that tensor (8× with AdamW's moments). The
// heap is sampled with the collector at GOGC=10, so that its in-use size
// is the live set (at the default GOGC=100 garbage of up to the live set
// again sits in it between collections; the test logs that too). Under the
// emulator the device memory is on the C heap, outside the Go heap. Set
// MINITRON_HOSTMEM=1 to run it (about three minutes on the emulator).
func TestRunCUDAHostMemory(t *testing.T) {
	if os.Getenv("MINITRON_HOSTMEM") == "" {
		t.Skip("set MINITRON_HOSTMEM=1 (about three minutes under the emulator)")
	}
	cfg, err := gpu.NemotronBench100M()
	if err != nil {
		t.Fatal(err)
	}
	largest := 0
	for _, ti := range model.ExpectedTensors(cfg) {
		largest = max(largest, 4*ti.NumElements())
	}
	runs := map[int]uint64{}
	for _, gc := range []int{100, 10} {
		old := debug.SetGCPercent(gc)
		runs[gc] = hostMemRun(t, cfg)
		debug.SetGCPercent(old)
	}
	live, full := runs[10], runs[100]
	t.Logf("%.1fM parameters: peak Go heap %.1f MiB live (GOGC=10), %.1f MiB at GOGC=100; largest tensor %.1f MiB; the f32 weights %.1f MiB",
		float64(cfg.ParamCounts().Total)/1e6, float64(live)/(1<<20), float64(full)/(1<<20), float64(largest)/(1<<20),
		float64(4*cfg.ParamCounts().Total)/(1<<20))
	if limit := uint64(5*largest/2 + 64<<20); live > limit {
		t.Errorf("live host heap grew by %.1f MiB, more than 2.5× the largest tensor + 64 MiB (%.1f MiB)", float64(live)/(1<<20), float64(limit)/(1<<20))
	}
}

// hostMemRun is TestRunCUDAHostMemory's run; it returns how far the Go
// heap in use rose above its start.
func hostMemRun(t *testing.T, cfg *model.Config) uint64 {
	src := Corpus(4, 20, 200, cfg.VocabSize)
	out := t.TempDir()
	base := func(steps int) Config {
		return Config{StudentConfig: cfg, RandomInit: true, Train: Sampler(t, src, 8, 3),
			SeqLen: 8, MicroBatch: 1, Steps: steps, LR: 1e-4, Seed: 1, Out: out, Device: "cuda", NoTF32: true}
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	c := base(3)
	ctx, cancel := context.WithCancel(context.Background())
	c.OnStep = func(m StepMetrics) {
		if m.Step == 2 {
			cancel()
		}
	}
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	c = base(3)
	c.Resume = true
	res, err := Run(context.Background(), c)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 3 {
		t.Fatalf("resumed run ended at step %d", res.Steps)
	}
	return peak.Load() - min(peak.Load(), before.HeapInuse)
}

// The acceptance: a 20-step distillation (CE 0.5 + KL at τ 2 from
// a random teacher of the same architecture) of tiny qwen2 (q/k/v biases,
// tied embeddings), qwen3 (q/k norms) and biased llama students, with the
// biases and q/k norms trained, on the CPU and through gpu (TF32 off):
// every step's loss agrees to 1e-4 relative and its gradient norm to 1e-3
// (the emulator measures ≤ 8.2e-6 and ≤ 2.1e-4, qwen2 the largest), and
// the checkpoints' weights to 1e-3 (AdamW's ±lr update where a gradient is
// near 0 can flip, at lr 3e-3; measured ≤ 3.6e-4). -short runs qwen3
// alone (about 40 s of CPU for all three on the emulator); gpu's
// TestExtrasGradientsMatchCPU checks every tensor's gradient of all three.
func TestRunCUDAMatchesCPUExtras(t *testing.T) {
	for _, tc := range []struct{ name, reason string }{
		{"qwen2", "q/k/v biases, o_proj without, tied embeddings"},
		{"qwen3", "q_norm/k_norm over head_dim 16 before RoPE"},
		{"llama-bias", "attention_bias and mlp_bias: every projection biased"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && tc.name != "qwen3" {
				t.Skip("20 emulated steps (-short runs qwen3)")
			}
			dir := t.TempDir()
			cc, want := BiasRunConfig(t, tc.name, "cpu", filepath.Join(dir, "cpu"))
			wres, err := Run(context.Background(), cc)
			if err != nil {
				t.Fatal(err)
			}
			gc, got := BiasRunConfig(t, tc.name, "cuda", filepath.Join(dir, "cuda"))
			gc.NoTF32 = true
			gres, err := Run(context.Background(), gc)
			if err != nil {
				t.Fatal(err)
			}
			if len(*got) != 20 || len(*want) != 20 {
				t.Fatalf("steps: cuda %d, cpu %d", len(*got), len(*want))
			}
			var worstLoss, worstNorm float64
			for i, w := range *want {
				g := (*got)[i]
				rl := math.Abs(g.Loss-w.Loss) / math.Abs(w.Loss)
				rn := math.Abs(g.GradNorm-w.GradNorm) / math.Abs(w.GradNorm)
				worstLoss, worstNorm = math.Max(worstLoss, rl), math.Max(worstNorm, rn)
				t.Logf("step %2d: loss %.7f (cpu %.7f, rel %.2g) grad norm %.6f (cpu %.6f)", i+1, g.Loss, w.Loss, rl, g.GradNorm, w.GradNorm)
				if !relClose(g.Loss, w.Loss, 1e-4) || !relClose(g.CE, w.CE, 1e-4) || !relClose(g.KL, w.KL, 1e-4) {
					t.Errorf("%s: step %d: loss %v (ce %v, kl %v), cpu %v (ce %v, kl %v)", tc.reason, i+1, g.Loss, g.CE, g.KL, w.Loss, w.CE, w.KL)
				}
				if !relClose(g.GradNorm, w.GradNorm, 1e-3) {
					t.Errorf("%s: step %d: grad norm %v, cpu %v", tc.reason, i+1, g.GradNorm, w.GradNorm)
				}
			}
			t.Logf("%s: largest per-step relative difference: loss %.3g, grad norm %.3g", tc.reason, worstLoss, worstNorm)
			compareCheckpoints(t, wres.Checkpoint, gres.Checkpoint, 1e-3)
		})
	}
}
