package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// benchCommands holds the constructors of `bench` subcommands; each file
// adds its own in init with registerBench.
var benchCommands []func() *cobra.Command

func registerBench(f func() *cobra.Command) { benchCommands = append(benchCommands, f) }

func init() {
	register(newBenchCmd)
	registerBench(newBenchForwardCmd)
}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure forward/training throughput (compare with scripts/torch_bench.py)",
		Long: `Time forward passes (bench forward) or training steps (bench train) of a random model of a
given shape, or of a checkpoint. scripts/torch_bench.py in the repository is the PyTorch
baseline: the same model from the same flags (forward|train, --arch, sizes, --batch, --seq,
--loss, --threads, --device cuda, --bf16, --json), timed the same way. It needs PyTorch.`,
		Example: `  minitron bench forward --json
  python3 scripts/torch_bench.py forward --json
  minitron bench train --loss kd --batch 8 --seq 128
  python3 scripts/torch_bench.py train --loss kd --batch 8 --seq 128
  minitron bench forward --model ./Minitron-4B --weights streaming --batch 1 --seq 32`,
	}
	for _, f := range benchCommands {
		cmd.AddCommand(f())
	}
	return cmd
}

// BenchForwardOptions are the flags of `bench forward`.
// BenchShape is the shape of the random model the bench commands build.
type BenchShape struct {
	Arch                                       string
	Layers, Hidden, Heads, KVHeads, FFN, Vocab int
	Batch, Seq                                 int
}

func (s *BenchShape) addFlags(f *pflag.FlagSet, what, batchHelp string) {
	f.StringVar(&s.Arch, "arch", "nemotron", "family of the random "+what+": nemotron, llama, mistral, qwen2 or qwen3")
	f.IntVar(&s.Layers, "layers", 4, "layers")
	f.IntVar(&s.Hidden, "hidden", 256, "hidden size")
	f.IntVar(&s.Heads, "heads", 4, "attention heads")
	f.IntVar(&s.KVHeads, "kv-heads", 2, "KV heads (GQA groups)")
	f.IntVar(&s.FFN, "ffn", 1024, "MLP intermediate size")
	f.IntVar(&s.Vocab, "vocab", 4096, "vocabulary size")
	f.IntVar(&s.Batch, "batch", 8, batchHelp)
	f.IntVar(&s.Seq, "seq", 128, "tokens per sequence")
}

// config is the random model's architecture.
func (s *BenchShape) config() (*model.Config, error) {
	fam := model.Family(s.Arch)
	switch fam {
	case model.Nemotron, model.Llama, model.Mistral, model.Qwen2, model.Qwen3:
	default:
		return nil, fmt.Errorf("--arch %q: want nemotron, llama, mistral, qwen2 or qwen3", s.Arch)
	}
	return model.SyntheticConfig(fam, s.Layers, s.Hidden, s.Heads, s.KVHeads, s.FFN, s.Vocab)
}

type BenchForwardOptions struct {
	BenchShape
	Warmup, Iters  int
	Model, Weights string
	Threads        int
	JSON           bool
	Device         string // cpu, or cuda (bench_forward_cuda.go)
	NoTF32         bool
	BF16           bool // cuda only: bf16-only weight matrices (gpu.Options.WeightsBF16)
}

func newBenchForwardCmd() *cobra.Command {
	o := &BenchForwardOptions{}
	cmd := &cobra.Command{
		Use:   "forward",
		Short: "Time full forward passes (all logits) of a random or given model",
		Long: `Time forward passes over random tokens and report tokens/s and GFLOP/s at the best of
--iters runs (after --warmup untimed ones), like scripts/torch_bench.py forward. Without --model the model is
random, in memory, f32, of the given shape. GFLOP/s counts matrix products only:
2·B·T·[L·(H·(qd+2kvd) + qd·H + m·H·F + F·H) + H·V] + L·B·nH·4·hd·Σ_i(visible keys of i),
m = 2 for gated MLPs (llama/mistral) else 1 (see model.ForwardFLOPs).
peak_rss_mb is the process's peak resident memory (getrusage), which with --weights streaming
shows the memory a checkpoint larger than RAM needs.
--device cuda times the inference forward pass of gpu on GPU 0 (f32 weights on the device,
TF32 tensor-core products, all logits) and reports the device and cuBLAS library, like bench
train --device cuda; needs the CUDA build. --bf16 keeps the weight matrices in bf16 only
(bf16 products with f32 accumulation); device_pool_peak_mb shows the memory it saves.`,
		Example: `  minitron bench forward --arch nemotron --layers 4 --hidden 256 --heads 4 --kv-heads 2 --ffn 1024 --vocab 4096 --batch 8 --seq 128 --json
  python3 scripts/torch_bench.py forward --batch 8 --seq 128   # the PyTorch baseline, same flags
  minitron init --arch nemotron --layers 24 --hidden 2048 --heads 16 --kv-heads 8 --ffn 8192 --vocab 32000 --dtype bf16 --out /tmp/big
  minitron bench forward --model /tmp/big --weights streaming --batch 1 --seq 32 --iters 1 --warmup 0
  bin/minitron-cuda bench forward --device cuda --layers 8 --hidden 768 --heads 12 --kv-heads 4 --ffn 3072 --vocab 32000 --batch 8 --seq 1024
  bin/minitron-cuda bench forward --device cuda --bf16 --layers 8 --hidden 768 --heads 12 --kv-heads 4 --ffn 3072 --vocab 32000 --batch 1 --seq 1024 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBenchForward(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	o.BenchShape.addFlags(f, "model", "sequences per forward pass")
	f.IntVar(&o.Warmup, "warmup", 2, "untimed passes first")
	f.IntVar(&o.Iters, "iters", 5, "timed passes")
	f.StringVar(&o.Model, "model", "", "benchmark this checkpoint directory instead of a random model")
	f.StringVar(&o.Weights, "weights", "auto", "weight mode: auto, resident or streaming")
	f.IntVar(&o.Threads, "threads", 0, "worker goroutines (default: all cores)")
	f.BoolVar(&o.JSON, "json", false, "print JSON (keys tokens_per_s, gflops, peak_rss_mb, …)")
	f.StringVar(&o.Device, "device", "cpu", "cpu, or cuda (a GPU; needs the CUDA build, make build-cuda)")
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	f.BoolVar(&o.BF16, "bf16", false, bf16Help)
	return cmd
}

func runBenchForward(o *BenchForwardOptions, w io.Writer) error {
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if dev.IsCUDA() {
		return runBenchForwardCUDA(o, w)
	}
	if err := checkBF16(o.BF16, dev); err != nil {
		return err
	}
	if o.Threads > 0 {
		defer kernels.SetWorkers(kernels.SetWorkers(o.Threads))
	}
	mode, err := model.ParseWeightMode(o.Weights)
	if err != nil {
		return err
	}
	var m *model.Model
	if o.Model != "" {
		if m, err = model.Load(o.Model, model.Options{Weights: mode}); err != nil {
			return err
		}
		defer m.Close()
	} else {
		cfg, err := o.config()
		if err != nil {
			return err
		}
		if mode == model.WeightsAuto {
			mode = model.WeightsResident
		}
		if m, err = model.New(cfg, model.NewRandomSource(cfg, model.F32, 1), model.Options{Weights: mode}); err != nil {
			return err
		}
	}
	r, err := model.BenchForward(m, o.Batch, o.Seq, o.Warmup, o.Iters, 1)
	if err != nil {
		return err
	}
	c := m.Cfg
	out := map[string]any{
		"tokens_per_s": r.TokensPerS, "gflops": r.GFLOPs, "peak_rss_mb": model.PeakRSSMB(),
		"best_ms": float64(r.Best.Microseconds()) / 1000, "mean_ms": float64(r.Mean.Microseconds()) / 1000,
		"batch": o.Batch, "seq": o.Seq, "iters": o.Iters, "threads": kernels.Workers(),
		"blas": kernels.BLASBackend(), "weights": map[bool]string{true: "resident", false: "streaming"}[m.Resident()],
		"f32_weights_mb": float64(model.F32WeightBytes(c)) / (1 << 20),
		"arch":           string(c.Family), "layers": c.NumLayers, "hidden": c.HiddenSize, "heads": c.NumHeads,
		"kv_heads": c.NumKVHeads, "ffn": c.IntermediateSize, "vocab": c.VocabSize,
	}
	if o.JSON {
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "%s L%d H%d heads %d/%d F%d V%d, batch %d × seq %d, %s weights, %d threads (%s, GOMAXPROCS %d)\n",
		c.Family, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.IntermediateSize, c.VocabSize,
		o.Batch, o.Seq, out["weights"], kernels.Workers(), kernels.BLASBackend(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "tokens/s %.0f   GFLOP/s %.1f   best %.1f ms   mean %.1f ms   peak RSS %.0f MiB (f32 weights %.0f MiB)\n",
		r.TokensPerS, r.GFLOPs, out["best_ms"], out["mean_ms"], out["peak_rss_mb"], out["f32_weights_mb"])
	return nil
}
