package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/spf13/cobra"
)

func init() { registerBench(newBenchTrainCmd) }

// BenchTrainOptions are the flags of `bench train`.
type BenchTrainOptions struct {
	BenchShape
	Steps    int
	Loss     string
	Threads  int
	BLASCore string
	JSON     bool
	Device   string // cpu, or cuda (bench_train_device*.go)
	BF16     bool   // cuda only: bf16 linear-layer products (gpu mixed precision)
	Zero     int    // ZeRO stage of a data-parallel benchmark (under mpirun)
	// cuda only: activation recomputation and chunked logits (as distill's)
	Recompute  bool
	LogitChunk int
	Offload    bool // cuda, bf16: the optimizer state in host memory (as distill --offload-optimizer)
}

func newBenchTrainCmd() *cobra.Command {
	o := &BenchTrainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Time full training steps (teacher forward for kd, student forward+backward, AdamW)",
		Long: `Time full optimizer steps of a random student of the given shape on one fixed random batch and
report tokens/s at the best of --steps steps (after 2 untimed ones), like
scripts/torch_bench.py train (the PyTorch baseline, same flags). --loss kd adds a frozen teacher of the same shape and forward KL.
--threads 0 tries one worker and all cores and reports the better (torch_bench.py does the same
with torch's thread count). peak_rss_mb is the process's peak resident memory.

Under mpirun (bin/minitron-mpi) the step is data parallel: --batch is the global batch, each rank
trains its share of it and the gradients are reduced over the ranks (--zero as in distill);
tokens/s counts the global batch, and comm_share is the share of rank 0's step time spent in
collectives (gradient reduction, weight gather, metrics; waiting for a slower rank included).`,
		Example: `  minitron bench train --arch nemotron --layers 4 --hidden 256 --heads 4 --kv-heads 2 --ffn 1024 --vocab 4096 --batch 8 --seq 128 --loss ce --json
  python3 scripts/torch_bench.py train --batch 8 --seq 128   # the PyTorch baseline, same flags
  # 2 ranks × 1 thread against 1 process × 2 threads
  mpirun -np 2 bin/minitron-mpi bench train --threads 1 --batch 8 --seq 128
  bin/minitron-mpi bench train --threads 2 --batch 8 --seq 128
  # a GPU (bin/minitron-cuda, make build-cuda): the ~100M goal shape at sequence 1024
  minitron bench train --device cuda --bf16 --arch nemotron --layers 8 --hidden 768 --heads 12 --kv-heads 4 --ffn 3072 --vocab 32000 --batch 8 --seq 1024`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBenchTrain(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	o.BenchShape.addFlags(f, "student", "sequences per step")
	f.IntVar(&o.Steps, "steps", 5, "timed steps")
	f.StringVar(&o.Loss, "loss", "ce", "ce (labels) or kd (forward KL from a same-shape teacher)")
	f.IntVar(&o.Threads, "threads", 0, "worker goroutines (0: best of 1 and all cores)")
	f.StringVar(&o.BLASCore, "blas-core", "", blasCoreHelp)
	f.BoolVar(&o.JSON, "json", false, "print JSON (keys tokens_per_s, peak_rss_mb, …)")
	f.StringVar(&o.Device, "device", "cpu", "cpu, or cuda (a GPU; needs the CUDA build, make build-cuda)")
	f.BoolVar(&o.BF16, "bf16", false, "with --device cuda: bf16 linear-layer products with f32 master weights (as distill --bf16)")
	f.IntVar(&o.Zero, "zero", 1, "under mpirun: ZeRO stage (0 replicated, 1 sharded moments, 2 also sharded gradients)")
	f.BoolVar(&o.Recompute, "recompute", false, "with --device cuda: recompute each layer in the backward pass (as distill --recompute)")
	f.BoolVar(&o.Offload, "offload-optimizer", false, "with --device cuda --bf16: f32 master weights and AdamW moments in host memory, AdamW on the CPU (as distill --offload-optimizer)")
	f.IntVar(&o.LogitChunk, "logit-chunk", 0, "with --device cuda: logits and losses over chunks of this many tokens (as distill --logit-chunk)")
	return cmd
}

func runBenchTrain(o *BenchTrainOptions, w io.Writer) error {
	if o.Loss != "ce" && o.Loss != "kd" {
		return fmt.Errorf("--loss %q: want ce or kd", o.Loss)
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if dev.IsCUDA() {
		return runBenchTrainCUDA(o, cfg, w)
	}
	if o.BF16 {
		return fmt.Errorf("--bf16 needs --device cuda (the CPU trainer runs in f32)")
	}
	if o.Recompute || o.LogitChunk != 0 || o.Offload {
		return fmt.Errorf("--recompute, --logit-chunk and --offload-optimizer need --device cuda (bench train times the CPU graph as it is)")
	}
	if _, err := kernels.SetBLASCore(o.BLASCore); err != nil {
		return fmt.Errorf("--blas-core: %w", err)
	}
	zero, err := zeroConfig(o.Zero)
	if err != nil {
		return err
	}
	jc, w, err := jobComm(w)
	if err != nil {
		return err
	}
	tries := []int{o.Threads}
	if o.Threads <= 0 {
		tries = []int{1}
		// under mpirun each rank runs one worker: the ranks share the cores
		if n := runtime.GOMAXPROCS(0); n > 1 && jc == nil {
			tries = append(tries, n)
		}
	}
	var best distill.BenchResult
	all := map[int]float64{}
	for _, th := range tries {
		r, err := distill.Bench(distill.BenchOptions{Cfg: cfg, Batch: o.Batch, Seq: o.Seq, Loss: o.Loss, Steps: o.Steps, Workers: th, Seed: 1,
			Comm: jc, Zero: zero})
		if err != nil {
			return err
		}
		all[th] = r.TokensPerS
		if r.TokensPerS > best.TokensPerS {
			best = r
		}
		// Return the finished try's memory so peak RSS is one run's, as
		// a training run would see it.
		runtime.GC()
		debug.FreeOSMemory()
	}
	out := map[string]any{
		"tokens_per_s": best.TokensPerS, "peak_rss_mb": model.PeakRSSMB(), "threads": best.Workers,
		"all": all, "best_ms": best.BestStepS * 1000, "mean_ms": best.MeanStepS * 1000,
		"params": best.Params, "loss": o.Loss, "batch": o.Batch, "seq": o.Seq, "blas": kernels.BLASBackend(),
		"blas_core": kernels.BLASCore(),
		"arch":      string(cfg.Family), "layers": cfg.NumLayers, "hidden": cfg.HiddenSize, "heads": cfg.NumHeads,
		"kv_heads": cfg.NumKVHeads, "ffn": cfg.IntermediateSize, "vocab": cfg.VocabSize,
	}
	if jc != nil {
		out["ranks"], out["comm_share"], out["zero"] = best.Ranks, best.CommShare, o.Zero
	}
	if o.JSON {
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "%s L%d H%d heads %d/%d F%d V%d, batch %d × seq %d, loss %s, %d params, %s (%s kernels)\n",
		cfg.Family, cfg.NumLayers, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.IntermediateSize, cfg.VocabSize,
		o.Batch, o.Seq, o.Loss, best.Params, kernels.BLASBackend(), kernels.BLASCore())
	fmt.Fprintf(w, "tokens/s %.0f (threads %d; all %v)   best step %.1f ms   mean %.1f ms   peak RSS %.0f MiB\n",
		best.TokensPerS, best.Workers, all, best.BestStepS*1000, best.MeanStepS*1000, out["peak_rss_mb"])
	if jc != nil {
		fmt.Fprintf(w, "data parallel: %d ranks, ZeRO %d, %.1f%% of the step time in communication (rank 0)\n", best.Ranks, o.Zero, 100*best.CommShare)
	}
	return nil
}

const blasCoreHelp = `OpenBLAS kernel set: "" keeps the one OpenBLAS chose (honouring OPENBLAS_CORETYPE), "auto" re-detects the CPU ignoring OPENBLAS_CORETYPE, or a core name (SkylakeX, Cooperlake, Haswell, …)`
