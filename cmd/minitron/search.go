package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/prune"
	"github.com/spf13/cobra"
)

func init() { register(newSearchCmd) }

// SearchOptions are the flags of `search`.
type SearchOptions struct {
	prune.SearchOptions
	Params   string
	HeadMode string
	Metric   string
	Weights  string
	DType    string
	// distillation of each candidate
	SeqLen, MicroBatch, GlobalBatch, Warmup, ValBatches int
	LR                                                  float64
	Device                                              string // cpu, or cuda: where candidates are distilled
	BF16, NoTF32                                        bool   // cuda: bf16 linear-layer products; full f32 products
}

// searchDistill, when set (tests), replaces the distillation of candidates.
var searchDistill prune.DistillFunc

// distillFunc distills a candidate with distill.Run: logit KL from the
// teacher, validated on the data's _val split (the same batches for every
// candidate), and returns the validation LM loss.
func distillFunc(o *SearchOptions, dev device.Kind) prune.DistillFunc {
	return func(ctx context.Context, teacherDir, studentDir, outDir, prefix string, steps int) (float64, string, error) {
		trainP, valP := prefix+"_train", prefix+"_val"
		if _, err := os.Stat(trainP + ".idx"); err != nil {
			trainP = prefix
		}
		res, err := distill.Run(ctx, distill.Config{StudentDir: studentDir, TeacherDir: teacherDir,
			Data: []string{trainP}, Val: []string{valP}, ValBatches: o.ValBatches,
			SeqLen: o.SeqLen, MicroBatch: o.MicroBatch, GlobalBatch: o.GlobalBatch, Steps: steps,
			LR: o.LR, Warmup: o.Warmup, Seed: 1, Out: outDir, Device: dev, BF16: o.BF16, NoTF32: o.NoTF32})
		if err != nil {
			return 0, "", err
		}
		if math.IsNaN(res.ValLoss) {
			return 0, "", fmt.Errorf("no validation loss (is there a %s split?)", valP)
		}
		return res.ValLoss, res.Checkpoint, nil
	}
}

func newSearchCmd() *cobra.Command {
	o := &SearchOptions{}
	cmd := &cobra.Command{
		Use:   "search",
		Short: "Search pruned architectures within a parameter budget by brief distillation",
		Long: `Enumerate candidate architectures on step grids like the papers' search spaces, keep those
whose parameter count is within --params ± --tolerance (nearest first, at most
--max-candidates), prune each from the teacher with the scores file, distill each briefly
(--steps; the paper used ~400 and found rankings stable after ~300), rank by validation loss
after distillation (distill.Run: forward KL on logits from the teacher, --seq-len,
--micro-batch, --lr with a cosine schedule; validation on the data's _val split, the same
batches for every candidate), and write OUT/search.md and OUT/search.json (also listing the zero-shot
loss right after pruning) and the winner's distillation run in OUT/winner (its final HF
checkpoint is named in search.json's winner_dir).

Grids (defaults): layers from the teacher's down to 3/4 (step 1, or L/16 above 16 layers);
query heads from the teacher's down to half, in steps of the KV-group count (KV groups are
kept); FFN and hidden from the teacher's down to a quarter in steps of the largest power of
two ≤ width/32, at most 256 (Nemotron-4 15B: hidden step 128, FFN step 256).
--dry-run needs only config.json and lists the candidates with their parameter counts.`,
		Example: `  minitron search --model ./Nemotron-4-15B --params 8.27e9 --dry-run
  minitron search --model ./teacher --scores scores.json --params 20M --data data/go --steps 400 --out runs/search
  bin/minitron-cuda search --model ./teacher --scores scores.json --params 20M --data data/go --steps 400 --device cuda --out runs/search-gpu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSearch(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ModelDir, "model", "", "teacher checkpoint directory (required)")
	f.StringVar(&o.ScoresPath, "scores", "", "scores file from minitron importance")
	f.StringVar(&o.Params, "params", "", "parameter budget, e.g. 8.27e9, 4.19B, 20M (required)")
	f.Float64Var(&o.Tolerance, "tolerance", 0.05, "accepted relative deviation from --params")
	f.StringVar(&o.Data, "data", "", "dataset prefix for distillation and validation")
	f.IntVar(&o.Steps, "steps", 400, "distillation steps per candidate")
	f.IntVar(&o.MaxCandidates, "max-candidates", 8, "candidates to try, nearest the budget first (0: all)")
	f.StringVar(&o.OutDir, "out", "", "output directory (must not exist or be empty)")
	f.IntVar(&o.Space.LayerStep, "layer-step", 0, "layer grid step (default: see above)")
	f.IntVar(&o.Space.MinLayers, "min-layers", 0, "fewest layers")
	f.IntVar(&o.Space.HeadStep, "head-step", 0, "head grid step")
	f.IntVar(&o.Space.MinHeads, "min-heads", 0, "fewest heads")
	f.IntVar(&o.Space.FFNStep, "ffn-step", 0, "FFN grid step")
	f.IntVar(&o.Space.MinFFN, "min-ffn", 0, "smallest FFN")
	f.IntVar(&o.Space.HiddenStep, "hidden-step", 0, "hidden grid step")
	f.IntVar(&o.Space.MinHidden, "min-hidden", 0, "smallest hidden")
	f.StringVar(&o.HeadMode, "head-mode", string(prune.PerGroup), "per-group or groups (see minitron prune --help)")
	f.StringVar(&o.Metric, "layer-metric", string(prune.LayerAuto), "how layers are dropped: auto, bi, loss or block")
	f.IntVar(&o.Prune.EvalSamples, "eval-samples", 16, "held-out samples for the zero-shot loss after pruning")
	f.StringVar(&o.DType, "dtype", "", "dtype of the pruned checkpoints (default: the teacher's)")
	f.StringVar(&o.Weights, "weights", "auto", "weights in memory: auto, resident or streaming")
	f.IntVar(&o.SeqLen, "seq-len", 256, "distillation sequence length")
	f.IntVar(&o.MicroBatch, "micro-batch", 4, "distillation micro-batch")
	f.IntVar(&o.GlobalBatch, "global-batch", 0, "distillation global batch (default: the micro-batch)")
	f.Float64Var(&o.LR, "lr", 2e-4, "peak distillation learning rate (cosine schedule to the paper's 4.5e-7)")
	f.IntVar(&o.Warmup, "warmup", 0, "warmup steps")
	f.IntVar(&o.ValBatches, "val-batches", 8, "validation micro-batches per candidate")
	f.BoolVar(&o.KeepAll, "keep-all", false, "keep every candidate's pruned and distilled checkpoints")
	f.BoolVar(&o.DryRun, "dry-run", false, "list candidates and parameter counts; needs only config.json")
	f.StringVar(&o.Device, "device", "cpu", "where candidates are distilled: "+deviceHelp)
	f.BoolVar(&o.BF16, "bf16", false, "with --device cuda: bf16 products in the linear layers of the distillation")
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("params")
	return cmd
}

func runSearch(ctx context.Context, o *SearchOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if o.BF16 && !dev.IsCUDA() {
		return fmt.Errorf("--bf16 needs --device cuda (the CPU distills in f32)")
	}
	if o.SearchOptions.Params, err = parseCount(o.Params); err != nil {
		return fmt.Errorf("--params: %w", err)
	}
	if o.Prune.Weights, err = model.ParseWeightMode(o.Weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	if o.DType != "" {
		if o.Prune.DType, err = model.ParseDType(o.DType); err != nil {
			return fmt.Errorf("--dtype: %w", err)
		}
	}
	o.Prune.HeadMode = prune.HeadMode(strings.ToLower(o.HeadMode))
	o.Prune.LayerMetric = prune.LayerMetric(strings.ToLower(o.Metric))
	o.Prune.EvalSeed = 7
	o.Log = stderr
	o.Distill = distillFunc(o, dev)
	if searchDistill != nil {
		o.Distill = searchDistill
	}
	res, err := prune.Search(ctx, o.SearchOptions)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, res.Markdown())
	if !o.DryRun {
		fmt.Fprintf(stdout, "\nwrote %s/search.md, search.json and winner/\n", o.OutDir)
	}
	return nil
}
