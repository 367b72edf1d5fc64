package distill

import (
	"fmt"
	"math/rand"
	"runtime"
	"time"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// BenchOptions describes a training-throughput measurement on a random
// model (the same shape scripts/torch_bench.py train builds).
type BenchOptions struct {
	Cfg          *model.Config
	Batch, Seq   int
	Loss         string // "ce" or "kd" (forward KL from a teacher of the same shape)
	Steps        int    // timed steps (after 2 warm-up steps); best is reported
	Workers      int    // goroutines for the kernels; 0 = GOMAXPROCS
	Seed         uint64
	StepCallback func(i int, d time.Duration)
}

// BenchResult is the best full-step throughput.
type BenchResult struct {
	TokensPerS float64 `json:"tokens_per_s"`
	BestStepS  float64 `json:"best_step_s"`
	MeanStepS  float64 `json:"mean_step_s"`
	Workers    int     `json:"workers"`
	Params     int     `json:"params"`
	Loss       float64 `json:"loss"`
}

// Bench times full training steps: teacher forward (kd), student forward and
// backward, AdamW.
func Bench(o BenchOptions) (BenchResult, error) {
	if o.Steps <= 0 {
		o.Steps = 5
	}
	if o.Workers > 0 {
		old := kernels.SetWorkers(o.Workers)
		defer kernels.SetWorkers(old)
	}
	kernels.SetBLASThreads(1) // Go owns the cores; BLAS calls are split by ParSgemm
	losses := Losses{CE: 1}
	var teacher *model.Model
	switch o.Loss {
	case "", "ce":
	case "kd":
		losses = Losses{KL: 1}
		var err error
		if teacher, err = model.New(o.Cfg, model.NewRandomSource(o.Cfg, model.F32, o.Seed+1), model.Options{}); err != nil {
			return BenchResult{}, err
		}
	default:
		return BenchResult{}, fmt.Errorf("unknown loss %q (want ce or kd)", o.Loss)
	}
	arch, err := model.NewArch(o.Cfg, nil)
	if err != nil {
		return BenchResult{}, err
	}
	tr, err := NewTrainer(device.CPU, EngineConfig{Arch: arch, Weights: model.NewRandomSource(o.Cfg, model.F32, o.Seed),
		Teacher: teacher, Batch: o.Batch, Seq: o.Seq, Losses: losses, Optim: DefaultOptim()}, Schedule{LR: 1e-4, MinLR: 1e-4})
	if err != nil {
		return BenchResult{}, err
	}
	defer tr.Engine.Close()
	batch := randomBatch(rand.New(rand.NewSource(int64(o.Seed))), o.Batch, o.Seq, o.Cfg.VocabSize)
	micro := [][][]int32{batch}
	var res BenchResult
	for i := 0; i < 2; i++ {
		if _, err := tr.TrainStep(micro, false); err != nil {
			return res, err
		}
	}
	runtime.GC()
	best, total := time.Duration(1<<62), time.Duration(0)
	for i := 0; i < o.Steps; i++ {
		t0 := time.Now()
		m, err := tr.TrainStep(micro, false)
		if err != nil {
			return res, err
		}
		d := time.Since(t0)
		total += d
		best = min(best, d)
		res.Loss = m.Loss
		if o.StepCallback != nil {
			o.StepCallback(i, d)
		}
	}
	res.BestStepS = best.Seconds()
	res.MeanStepS = total.Seconds() / float64(o.Steps)
	res.TokensPerS = float64(o.Batch*o.Seq) / best.Seconds()
	res.Workers = kernels.Workers()
	res.Params = int(o.Cfg.ParamCounts().Total)
	return res, nil
}

func randomBatch(rng *rand.Rand, batch, seq, vocab int) [][]int32 {
	out := make([][]int32, batch)
	for b := range out {
		out[b] = make([]int32, seq+1)
		for i := range out[b] {
			out[b][i] = int32(rng.Intn(vocab))
		}
	}
	return out
}
