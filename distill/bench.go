package distill

import (
	"fmt"
	"math/rand"
	"runtime"
	"time"

	"github.com/minitron-dev/minitron/comm"
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
	// Comm, with more than one rank, times data-parallel steps: Batch is
	// the global batch, each rank trains Batch/Size sequences of it, and
	// the gradients are reduced at ZeRO stage Zero (Config.Zero).
	Comm comm.Communicator
	Zero int
}

// BenchResult is the best full-step throughput.
type BenchResult struct {
	TokensPerS float64 `json:"tokens_per_s"`
	BestStepS  float64 `json:"best_step_s"`
	MeanStepS  float64 `json:"mean_step_s"`
	Workers    int     `json:"workers"`
	Params     int     `json:"params"`
	Loss       float64 `json:"loss"`
	// CommShare is the share of the timed steps' time spent in
	// collectives (data parallel; rank 0's).
	CommShare float64 `json:"comm_share,omitempty"`
	Ranks     int     `json:"ranks,omitempty"`
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
	ranks, rank := 1, 0
	if o.Comm != nil && o.Comm.Size() > 1 {
		ranks, rank = o.Comm.Size(), o.Comm.Rank()
		if o.Batch%ranks != 0 {
			return BenchResult{}, fmt.Errorf("batch %d does not divide over %d ranks", o.Batch, ranks)
		}
	}
	tr, err := NewTrainer(device.CPU, EngineConfig{Arch: arch, Weights: model.NewRandomSource(o.Cfg, model.F32, o.Seed),
		Teacher: teacher, Batch: o.Batch / ranks, Seq: o.Seq, Losses: losses, Optim: DefaultOptim()}, Schedule{LR: 1e-4, MinLR: 1e-4})
	if err != nil {
		return BenchResult{}, err
	}
	defer tr.Engine.Close()
	step := func(micro [][][]int32) (StepMetrics, error) { return tr.TrainStep(micro, false) }
	if ranks > 1 {
		stage := (&Config{Comm: o.Comm, Zero: o.Zero}).zeroStage()
		if tr.dp, err = newDataParallel(o.Comm, tr.Engine, stage); err != nil {
			return BenchResult{}, err
		}
		step = func(micro [][][]int32) (StepMetrics, error) { return tr.stepParallel(micro, ranks, false) }
	}
	// each rank its own part of the global batch
	batch := randomBatch(rand.New(rand.NewSource(int64(o.Seed)+int64(rank))), o.Batch/ranks, o.Seq, o.Cfg.VocabSize)
	micro := [][][]int32{batch}
	var res BenchResult
	for i := 0; i < 2; i++ {
		if _, err := step(micro); err != nil {
			return res, err
		}
	}
	runtime.GC()
	best, total := time.Duration(1<<62), time.Duration(0)
	comm0 := tr.CommTime()
	for i := 0; i < o.Steps; i++ {
		t0 := time.Now()
		m, err := step(micro)
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
	res.CommShare = (tr.CommTime() - comm0).Seconds() / total.Seconds()
	res.Ranks = ranks
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
