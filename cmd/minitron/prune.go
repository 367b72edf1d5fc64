package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/prune"
	"github.com/spf13/cobra"
)

func init() { register(newPruneCmd) }

// PruneOptions are the flags of `prune`.
type PruneOptions struct {
	prune.Options
	DropLayers string
	Params     string
	DType      string
	ShardSize  string
	Weights    string
	HeadMode   string
	Metric     string
}

func newPruneCmd() *cobra.Command {
	o := &PruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Prune a checkpoint to a smaller architecture using importance scores",
		Long: `Prune a Hugging Face checkpoint by importance: keep the top-scored embedding channels
(network-wide), KV groups and query heads, MLP neurons (per layer, the same widths in every
layer; head_dim never changes) and layers, and write a complete checkpoint directory
(config.json with an explicit head_dim, safetensors in the teacher's dtype or --dtype, sharded
with --shard-size, tokenizer files and generation_config.json copied) plus prune_report.json
and prune_report.txt (kept indices per axis, parameters before and after, teacher vs pruned
loss on the held-out (_val) part of the calibration data; when the scores' data has no _val
split, e.g. a plain Megatron prefix, the comparison is skipped with a note, or give --data).

The shape is given one way:
  --hidden/--ffn/--heads/--kv-heads/--layers   explicit widths (omitted ones stay the teacher's)
  --preset minitron-8b|minitron-4b             the papers' students of Nemotron-4 15B:
        minitron-8b 32 layers / hidden 4096 / 48 heads / 8 KV / head_dim 128 / FFN 16384 (8.27B)
        minitron-4b 32 layers / hidden 3072 / 24 heads / 8 KV / head_dim 128 / FFN  9216 (4.19B)
        (the Minitron-4B model card says 32 heads, but that shape has 4.39B parameters; the
        paper's 4.19B count and this tool use 24)
  --params N                                   the papers' default recipe for a budget: keep all
        layers and heads, cut the MLP first down to --min-ffn-frac of the teacher's FFN, then
        cut the embedding; widths on a grid (hidden step ≤128, FFN step ≤256), the shape whose
        count is nearest N wins (on Nemotron-4 15B, --params 8.27e9 gives Minitron-8B)

Heads under GQA (--head-mode):
  per-group  keep every KV group and the same number of query heads in each (default);
             --kv-heads may still be lowered explicitly, then the top groups are kept
  groups     drop whole KV groups with all their query heads (--heads must be a multiple of
             the teacher's group size)

--residual-heads is our form of the paper's trick of keeping pruned heads' information: in
each kept KV group, the o_proj columns of every pruned query head are added to those of a
kept head of the same group (pruned heads by descending score go to kept heads by ascending
score, cycling — the paper's head_i + head_(2K−i+1) pairing). Heads of one group share their
values, so this is exact when the two heads attend alike and an approximation otherwise.
Whole dropped groups are not folded.

Layers: --layers N drops the teacher's lowest-ranked layers by --layer-metric (auto: the
drop-one loss when the scores have it, else Block Importance; block: one contiguous block),
or --drop-layers lists them (e.g. 16-31; on its own it is the whole shape: --layers is implied
and every width stays the teacher's).

--method random|magnitude prunes by random or weight-norm scores instead of a scores file
(baselines for comparison). --dry-run needs only config.json and prints the target
architecture and its parameter count. Invalid shapes, a scores file from another model and
a non-empty --out fail before anything is written; the output appears only when complete.`,
		Example: `  minitron prune --model ./Nemotron-4-15B --dry-run --preset minitron-4b
  minitron prune --model ./teacher --scores scores.json --out ./student --hidden 384 --ffn 1024
  minitron prune --model ./teacher --scores scores.json --out ./student --params 20e6
  minitron prune --model ./teacher --scores scores.json --out ./shallow --drop-layers 6-11
  minitron prune --model ./teacher --method random --seed 1 --out ./rand --ffn 1024 --data data/go`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ModelDir, "model", "", "teacher checkpoint directory (required)")
	f.StringVar(&o.ScoresPath, "scores", "", "scores file from minitron importance (required with --method importance)")
	f.StringVar(&o.OutDir, "out", "", "output checkpoint directory (must not exist or be empty)")
	f.IntVar(&o.Target.Hidden, "hidden", 0, "embedding channels to keep")
	f.IntVar(&o.Target.FFN, "ffn", 0, "MLP neurons to keep per layer")
	f.IntVar(&o.Target.Heads, "heads", 0, "query heads to keep per layer")
	f.IntVar(&o.Target.KVHeads, "kv-heads", 0, "KV groups to keep per layer (default: per --head-mode)")
	f.IntVar(&o.Target.Layers, "layers", 0, "layers to keep")
	f.StringVar(&o.Preset, "preset", "", "named shape: "+strings.Join(prune.PresetNames(), ", "))
	f.StringVar(&o.Params, "params", "", "parameter budget (e.g. 8.27e9, 4.19B, 20M): the default recipe")
	f.Float64Var(&o.MinFFNFraction, "min-ffn-frac", prune.DefaultMinFFNFraction, "--params: smallest fraction of the teacher's FFN before the embedding is cut")
	f.StringVar(&o.DropLayers, "drop-layers", "", "layers to drop, e.g. 16-31 or 3,5,7")
	f.StringVar(&o.HeadMode, "head-mode", string(prune.PerGroup), "per-group or groups")
	f.StringVar(&o.Metric, "layer-metric", string(prune.LayerAuto), "how --layers picks layers: auto, bi, loss or block")
	f.BoolVar(&o.ResidualHeads, "residual-heads", false, "fold pruned heads into kept heads of their KV group (see above)")
	f.BoolVar(&o.RescaleNorms, "rescale-norms", false, "scale RMSNorm weights by sqrt(H/H') when cutting channels (RMSNorm families; q/k norms untouched; not in the papers)")
	f.StringVar(&o.Method, "method", prune.MethodImportance, "importance, random or magnitude")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of --method random")
	f.StringVar(&o.DType, "dtype", "", "output dtype: bf16, f16 or f32 (default: the teacher's)")
	f.StringVar(&o.ShardSize, "shard-size", "5GB", "largest safetensors shard (0: one file)")
	f.StringVar(&o.EvalData, "data", "", "dataset prefix for the held-out loss (its _val split; default: the scores' data, skipped with a note if it has none; none: skip)")
	f.IntVar(&o.EvalSamples, "eval-samples", 16, "held-out samples for the loss comparison")
	f.IntVar(&o.EvalSeqLen, "eval-seq-len", 0, "held-out sample length (default: the scores' length, at most 512)")
	f.Uint64Var(&o.EvalSeed, "eval-seed", 7, "seed of the held-out samples")
	f.StringVar(&o.Weights, "weights", "auto", "weights in memory: auto, resident or streaming")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the target architecture and parameter count; needs only config.json")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

// parseCount reads 8.27e9, 8.27B, 20M, 512K or plain integers.
func parseCount(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mul := 1.0
	switch {
	case strings.HasSuffix(t, "B"), strings.HasSuffix(t, "G"):
		mul, t = 1e9, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mul, t = 1e6, t[:len(t)-1]
	case strings.HasSuffix(t, "K"):
		mul, t = 1e3, t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad count %q (want e.g. 8.27e9, 4.19B, 20M)", s)
	}
	return int64(v*mul + 0.5), nil
}

// parseBytes reads 5GB, 500MB, 0.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(strings.ToUpper(s)), "B")
	if t == "0" || t == "" {
		return 0, nil
	}
	n, err := parseCount(t)
	if err != nil {
		return 0, fmt.Errorf("bad size %q (want e.g. 5GB, 500MB, 0)", s)
	}
	return n, nil
}

func runPrune(ctx context.Context, o *PruneOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C stops the work and removes the half-written output; a second
	// one kills at once.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	var err error
	if o.Params != "" {
		if o.Options.Params, err = parseCount(o.Params); err != nil {
			return fmt.Errorf("--params: %w", err)
		}
	}
	if o.DropLayers != "" {
		if o.Options.DropLayers, err = prune.ParseLayerList(o.DropLayers); err != nil {
			return fmt.Errorf("--drop-layers: %w", err)
		}
	}
	if o.DType != "" {
		if o.Options.DType, err = model.ParseDType(o.DType); err != nil {
			return fmt.Errorf("--dtype: %w", err)
		}
	}
	if o.ShardBytes, err = parseBytes(o.ShardSize); err != nil {
		return fmt.Errorf("--shard-size: %w", err)
	}
	if o.Options.Weights, err = model.ParseWeightMode(o.Weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	o.HeadMode = strings.ToLower(o.HeadMode)
	o.Options.HeadMode = prune.HeadMode(o.HeadMode)
	o.LayerMetric = prune.LayerMetric(strings.ToLower(o.Metric))
	if !o.DryRun {
		o.Log = stderr
	}
	rep, err := prune.Run(ctx, o.Options)
	if err != nil {
		return err
	}
	if o.DryRun {
		fmt.Fprint(stdout, rep.Text())
		js, _ := rep.Student.MarshalJSON()
		fmt.Fprintf(stdout, "config.json of the student:\n%s", js)
		return nil
	}
	fmt.Fprint(stdout, rep.Text())
	fmt.Fprintf(stdout, "wrote %s\n", o.OutDir)
	return nil
}
