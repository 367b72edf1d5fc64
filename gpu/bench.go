//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// NemotronBench100M is the ~100M-parameter Nemotron-shaped model the
// issue's throughput goal names: 8 layers, hidden 768, 12 heads (4 KV
// groups, head dim 64), relu² MLP of 3072, vocabulary 32000, untied head
// (≈ 99M parameters).
func NemotronBench100M() (*model.Config, error) {
	return model.SyntheticConfig(model.Nemotron, 8, 768, 12, 4, 3072, 32000)
}

// BenchResult is the best full-step training throughput on the device.
type BenchResult struct {
	Device     string  `json:"device"`
	Params     int     `json:"params"`
	Batch      int     `json:"batch"`
	Seq        int     `json:"seq"`
	TokensPerS float64 `json:"tokens_per_s"`
	BestStepS  float64 `json:"best_step_s"`
	MeanStepS  float64 `json:"mean_step_s"`
	TFLOPs     float64 `json:"tflop_per_s"` // model FLOPs / best step time
	// MFU against the device's dense tensor-core peak for TF32 (the math
	// f32 products run in) and for BF16 (the usual MFU denominator); 0
	// when the device is not in PeakTFLOPS's table.
	MFUTF32 float64 `json:"mfu_tf32"`
	MFUBF16 float64 `json:"mfu_bf16"`
	Loss    float64 `json:"loss"`
	// PeakBytes is the device pool's measured peak (every buffer and
	// kernel temporary the run allocated); PlanBytes is distill.NewPlan's
	// total for the same run.
	PeakBytes int64 `json:"pool_peak_bytes"`
	PlanBytes int64 `json:"plan_bytes"`
}

// BenchConfig is what Bench runs.
type BenchConfig struct {
	Batch, Seq, Steps int
	KD                bool // a teacher of the same shape and forward KL, else cross-entropy
	BF16              bool // bf16 products (mixed precision), else TF32
	Recompute         bool // Options.Recompute
	LogitChunk        int  // Options.LogitChunk
	// Offload (with BF16) keeps the master weights and moments on the host
	// (EngineConfig.Offload)
	Offload bool
	Seed    uint64
}

// PeakTFLOPS returns the dense tensor-core peaks (TF32, BF16) of a GPU by
// its CUDA device name, 0s when unknown. Values are NVIDIA's datasheet
// numbers without sparsity.
func PeakTFLOPS(name string) (tf32, bf16 float64) {
	n := strings.ToUpper(name)
	switch {
	case strings.Contains(n, "H200"), strings.Contains(n, "H100") && (strings.Contains(n, "SXM") || strings.Contains(n, "HBM3")):
		return 494.7, 989.4
	case strings.Contains(n, "H100") && strings.Contains(n, "NVL"):
		return 417.5, 835
	case strings.Contains(n, "H100"): // PCIe
		return 378, 756
	case strings.Contains(n, "A100"):
		return 156, 312
	}
	return 0, 0
}

// TrainFLOPs is a step's model FLOPs: three times the forward's (forward,
// and a backward of twice the forward), counted as model.ForwardFLOPs does
// (matrix products and attention, causal half); a KD teacher adds its
// forward.
func TrainFLOPs(student, teacher *model.Config, batch, seq int) float64 {
	f := 3 * model.ForwardFLOPs(student, batch, seq)
	if teacher != nil {
		f += model.ForwardFLOPs(teacher, batch, seq)
	}
	return f
}

// Bench times bc.Steps training steps (after two warm-up steps) of a
// random model of cfg on micro-batches of Batch × Seq tokens; KD adds a
// teacher of the same shape and trains on forward KL, else on
// cross-entropy; BF16 runs the linear layers' products in bf16
// (Options.BF16 for the student, a bf16 weight store for the teacher),
// else TF32. It reports the pool's peak beside the memory plan's total
// (both include whatever d held before).
func Bench(d *cuda.Device, cfg *model.Config, bc BenchConfig) (BenchResult, error) {
	batch, seq, steps, kd, bf16, seed := bc.Batch, bc.Seq, bc.Steps, bc.KD, bc.BF16, bc.Seed
	if steps <= 0 {
		steps = 5
	}
	res := BenchResult{Device: d.Name, Batch: batch, Seq: seq}
	if bc.Offload && !bf16 {
		return res, fmt.Errorf("gpu: optimizer offload needs bf16")
	}
	src := model.NewRandomSource(cfg, model.F32, seed)
	s, err := NewModelOpts(d, cfg, src, Options{Batch: batch, Seq: seq, Train: true,
		Recompute: bc.Recompute, LogitChunk: bc.LogitChunk, WeightsBF16: bc.Offload, BF16: bf16 && !bc.Offload})
	if err != nil {
		return res, err
	}
	defer s.Free()
	losses := distill.Losses{CE: 1}
	var teacher *Model
	var tcfg *model.Config
	if kd {
		losses = distill.Losses{KL: 1}
		// the teacher only infers: with bf16 its weight matrices are stored
		// bf16 alone (as distill's with Device cuda and BF16)
		if teacher, err = NewModelOpts(d, cfg, model.NewRandomSource(cfg, model.F32, seed+1), Options{Batch: batch, Seq: seq, WeightsBF16: bf16, LogitChunk: bc.LogitChunk}); err != nil {
			return res, err
		}
		defer teacher.Free()
		tcfg = cfg
	}
	eng, err := NewEngineFor(s, teacher, distill.EngineConfig{Losses: losses, Optim: distill.DefaultOptim(), Offload: bc.Offload, Weights: src})
	if err != nil {
		return res, err
	}
	defer eng.Free()
	tr := &distill.Trainer{Engine: eng, Optim: distill.DefaultOptim(), Sched: distill.Schedule{LR: 1e-4, MinLR: 1e-4}}
	rng := rand.New(rand.NewPCG(seed, 1))
	tokens := make([][]int32, batch)
	for b := range tokens {
		tokens[b] = make([]int32, seq+1)
		for i := range tokens[b] {
			tokens[b][i] = int32(rng.IntN(cfg.VocabSize))
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := tr.TrainStep([][][]int32{tokens}, false); err != nil {
			return res, fmt.Errorf("warm-up step %d: %w", i, err)
		}
	}
	best, total := time.Duration(1<<62), time.Duration(0)
	for i := 0; i < steps; i++ {
		t0 := time.Now()
		m, err := tr.TrainStep([][][]int32{tokens}, false)
		if err == nil {
			err = d.Sync()
		}
		if err != nil {
			return res, err
		}
		dt := time.Since(t0)
		best, total = min(best, dt), total+dt
		res.Loss = m.Loss
	}
	res.Params = s.NumParams()
	res.BestStepS = best.Seconds()
	res.MeanStepS = total.Seconds() / float64(steps)
	res.TokensPerS = float64(batch*seq) / best.Seconds()
	res.TFLOPs = TrainFLOPs(cfg, tcfg, batch, seq) / best.Seconds() / 1e12
	if tf, bf := PeakTFLOPS(d.Name); tf > 0 {
		res.MFUTF32, res.MFUBF16 = res.TFLOPs/tf, res.TFLOPs/bf
	}
	res.PeakBytes = d.Pool().Peak
	prec := "f32"
	if bf16 {
		prec = "bf16"
	}
	plan, err := distill.NewPlan(distill.PlanConfig{Student: cfg, Teacher: tcfg, Seq: seq, Batch: batch, Precision: prec,
		Recompute: bc.Recompute, LogitChunk: bc.LogitChunk, Offload: bc.Offload, Losses: losses})
	if err != nil {
		return res, fmt.Errorf("memory plan: %w", err)
	}
	res.PlanBytes = plan.PerGPUBytes
	return res, nil
}
