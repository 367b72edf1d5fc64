package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/reproduce"
	"github.com/spf13/cobra"
)

func init() { register(newReproduceCmd) }

// ReproduceOptions are the flags of `reproduce`.
type ReproduceOptions struct {
	Out     string
	Quick   bool
	Threads int
	Device  string
	NoTF32  bool
	// BLASCore: "" keeps OPENBLAS_CORETYPE's kernel set when it is set and
	// otherwise replaces a generic fallback OpenBLAS chose on a CPU it does
	// not know (kernels.UpgradeBLASCore); else as distill's --blas-core.
	BLASCore string
}

// Default run directories: a run directory holds one device's run.
const (
	reproduceOutCPU  = "runs/default"
	reproduceOutCUDA = "runs/cuda"
)

func newReproduceCmd() *cobra.Command {
	o := &ReproduceOptions{}
	cmd := &cobra.Command{
		Use:   "reproduce",
		Short: "Run the Minitron paper in miniature on built-in data (no download)",
		Long: `reproduce runs the whole Minitron flow on the corpora every Go installation ships (the Go
sources as the main corpus, Newton's Opticks as a second domain): it trains a byte-level BPE
tokenizer and an 8-layer nemotron teacher, scores importance, prunes two students to about 50%
and 25% of the teacher's non-embedding parameters with the papers' width recipe, distills
each with logits-only KL, trains the baselines on the same token budgets (from scratch; CE
retraining; depth pruning at equal non-embedding and at equal total parameters; random
pruning; from scratch with many times the tokens) and the distillation-loss ablation (KD + CE,
KD + intermediate-state loss), every trained arm over 3 seeds, evaluates every model
(held-out perplexity on both corpora, next-line multiple-choice tasks in HellaSwag format)
and writes OUT/REPORT.md with tables, each of the papers' claims with its paired difference
over the seeds, standard error and verdict (held, not held or inconclusive: beyond 2 standard
errors), and plots under OUT/plots.

Every stage is cached in its own directory under OUT: a re-run skips finished stages, and a
changed setting reruns only what depends on it. --quick runs the same pipeline on tiny sizes
in about a minute (a smoke test, not a result). Progress goes to stderr.

--device cuda (in a CUDA build: make build-cuda, or make reproduce DEVICE=cuda) runs the
training and distillation, the importance scoring and the evaluations on GPU 0, with TF32
matrix products unless --no-tf32; tokenizer, data, tasks and pruning stay on the CPU. Its
stage keys differ from the CPU's, and one run directory holds one device's run (the default
--out is then runs/cuda): a cuda run never reuses CPU results nor overwrites them. REPORT.md
and results.json name the device and the GPU.`,
		Example: `  minitron reproduce --out runs/mini
  minitron reproduce --quick --out runs/quick
  bin/minitron-cuda reproduce --device cuda            # → runs/cuda`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Out = reproduceOut(o, cmd.Flags().Changed("out"))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runReproduce(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", reproduceOutCPU, "run directory (stages are cached here; "+reproduceOutCUDA+" with --device cuda)")
	f.BoolVar(&o.Quick, "quick", false, "tiny sizes: the same pipeline in about a minute")
	f.IntVar(&o.Threads, "threads", 0, "compute goroutines (0: all cores)")
	f.StringVar(&o.Device, "device", string(device.CPU), "where training, importance and evaluation run: "+deviceHelp)
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	f.StringVar(&o.BLASCore, "blas-core", "", blasCoreHelp+`; with "", a generic fallback kernel set that OpenBLAS picks on a CPU model it does not know (Prescott on an AVX-512 machine) is replaced by SkylakeX's or Haswell's when OPENBLAS_CORETYPE is unset`)
	return cmd
}

// reproduceOut is the run directory: --out when given, else the device's
// default (a run directory holds one device's run).
func reproduceOut(o *ReproduceOptions, outGiven bool) string {
	if dev, _ := device.Parse(o.Device); !outGiven && dev.IsCUDA() {
		return reproduceOutCUDA
	}
	return o.Out
}

func runReproduce(ctx context.Context, o *ReproduceOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// The device first: a CPU build asked for cuda fails before any work.
	dev, err := parseDevice(o.Device)
	if err != nil {
		return fmt.Errorf("reproduce: %w", err)
	}
	if o.NoTF32 && !dev.IsCUDA() {
		return fmt.Errorf("reproduce: --no-tf32 needs --device cuda (the CPU computes in f32)")
	}
	// The kernel set changes both the speed and the float rounding (the
	// report names it).
	if o.BLASCore == "" {
		from, to, err := kernels.UpgradeBLASCore()
		if err != nil {
			return fmt.Errorf("reproduce: OpenBLAS kernel set: %w", err)
		}
		if from != to {
			fmt.Fprintf(stderr, "reproduce: OpenBLAS chose its generic %s kernels on this CPU; using %s (set OPENBLAS_CORETYPE or --blas-core to choose)\n", from, to)
		}
	} else if _, err := kernels.SetBLASCore(o.BLASCore); err != nil {
		return fmt.Errorf("reproduce: --blas-core: %w", err)
	}
	cfg := reproduce.FullConfig()
	if o.Quick {
		cfg = reproduce.QuickConfig()
	}
	res, err := reproduce.Run(ctx, reproduce.Options{Out: o.Out, Config: cfg, Log: stderr, Workers: o.Threads,
		Device: dev, NoTF32: o.NoTF32})
	if err != nil {
		return err
	}
	n := reproduce.CountVerdicts(res.Claims)
	where := res.Device
	if res.GPU != "" {
		where += ", " + res.GPU
	}
	fmt.Fprintf(stdout, "%s/REPORT.md: %d models, %d claim checks (%d held, %d not held, %d inconclusive), %.0fs on %s (%d of %d stages cached)\n",
		res.Out, len(res.Models), len(res.Claims), n[reproduce.Held], n[reproduce.NotHeld], n[reproduce.Inconclusive], res.Seconds, where, res.Skipped(), len(res.Stages))
	return nil
}
