package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

func init() { register(newImportanceCmd) }

// ImportanceOptions are the flags of `importance`.
type ImportanceOptions struct {
	Model        string
	Data         string
	Samples      int
	SeqLen       int
	Batch        int
	Out          string
	Overwrite    bool
	AggBatch     string
	AggSeq       string
	MLPPoint     string
	LayerMetrics string
	LossSamples  int
	BlockK       []int
	Seed         uint64
	Weights      string
	BLASThreads  int
	Device       string
	NoTF32       bool
	BF16         bool
	Shard        string
}

func newImportanceCmd() *cobra.Command {
	o := &ImportanceOptions{}
	cmd := &cobra.Command{
		Use:   "importance",
		Short: "Score heads, KV groups, neurons, embedding channels and layers on calibration data",
		Long: `Run the model over calibration samples (forward passes only) and score every prunable part
the Minitron way, writing a scores file that minitron prune reuses without recomputation.

Widths. For each sample and each channel the activation magnitudes m_t over the sample's
tokens are reduced over the sequence (--agg-seq: mean = mean_t m_t, l2 = sqrt(Σ_t m_t²),
var = population variance of m_t), then the per-sample values v_s over the samples
(--agg-batch: l2 = sqrt(Σ_s v_s²), mean, var). The default batch=l2, seq=mean is the paper's
best and NVIDIA's code (mean|x| over the sequence, root of the sum of squares over samples).
  heads     m = L2 norm of the head's attention output (the input of o_proj)
  groups    sum of the scores of the KV group's query heads
  neurons   m = |MLP intermediate|: --mlp-point pre (X·W1ᵀ, the paper; gate for SwiGLU) or
            post (the input of down_proj, NVIDIA's code; default)
  channels  m = |norm output| for input_layernorm and post_attention_layernorm of every layer;
            the per-norm scores are summed

Layers (--layer-metrics): bi = Block Importance, 1 − mean cos(layer input, layer output) over
all calibration tokens; loss = validation loss (mean next-token NLL) on --loss-samples samples
of PREFIX_val (of the calibration samples when there is no _val split) with each layer dropped
(one extra pass per layer), and for each --block-k the contiguous block of k layers whose
removal hurts least (by loss, and by summed BI).

Samples are drawn from PREFIX_train (seeded; see minitron data prepare) and streamed in
batches of --batch, so memory is one batch's activations plus the accumulators. The scores
file records the model's identity (hashes of config.json and of the tensor headers plus a
few values of each tensor), the data, sample count, sequence length and aggregation, and its
provenance: the checkpoint directory, the device and the minitron version.

--device cuda (a binary built with -tags minitron_cuda) runs every forward pass on GPU 0: the
weights go up once, the activation statistics (per-sample sequence reductions, their sums over
samples, per-head norms, Block Importance's cosines) accumulate on the device and only the
per-channel sums come back, to be reduced over samples on the host as on the CPU; the
layer-drop losses read the device's logits. Models with attention/MLP biases are not supported
there. Matrix products use TF32 unless --no-tf32; --bf16 keeps the weight matrices (linear
layers, embedding) on the GPU in bf16 only (half their f32 memory, bf16 products with f32 accumulation), for a model
whose f32 weights do not fit the GPU.`,
		Example: `  minitron importance --model ./teacher --data data/go --samples 1024 --seq-len 4096 --batch 4 --out scores.json
  minitron importance --model ./teacher --data data/go --shard 0/2 --out part-0.json   # and --shard 1/2 --out part-1.json elsewhere
  minitron importance merge --out scores.json part-*.json
  mpirun -np 4 bin/minitron-mpi importance --model ./teacher --data data/go --out scores.json
  minitron importance --model ./teacher --data data/go --samples 64 --seq-len 256 --agg-batch mean --agg-seq l2 --out s.json
  minitron importance --model ./teacher --data data/go --layer-metrics bi --mlp-point pre --out s.json
  minitron-cuda importance --model ./teacher --data data/go --samples 1024 --seq-len 4096 --batch 8 --device cuda --out scores.json
  minitron-cuda importance --model ./Nemotron-15B --data data/go --samples 1024 --seq-len 4096 --device cuda --bf16 --out scores.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImportance(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	cmd.AddCommand(newImportanceMergeCmd())
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "checkpoint directory (required)")
	f.StringVar(&o.Data, "data", "", "dataset prefix: PREFIX_train.{bin,idx} (required)")
	f.IntVar(&o.Samples, "samples", 1024, "calibration samples")
	f.IntVar(&o.SeqLen, "seq-len", 4096, "tokens per sample")
	f.IntVar(&o.Batch, "batch", 1, "samples per forward pass")
	f.StringVar(&o.Out, "out", "", "scores file to write (required)")
	f.StringVar(&o.AggBatch, "agg-batch", "l2", "reduction over samples: l2, mean or var")
	f.StringVar(&o.AggSeq, "agg-seq", "mean", "reduction over the sequence: mean, l2 or var")
	f.StringVar(&o.MLPPoint, "mlp-point", importance.MLPPost, "neuron activations before (pre) or after (post) the nonlinearity")
	f.StringVar(&o.LayerMetrics, "layer-metrics", "bi,loss", "layer importance metrics: bi, loss, both or none")
	f.IntVar(&o.LossSamples, "loss-samples", 32, "samples for the layer-drop losses (0: all)")
	f.IntSliceVar(&o.BlockK, "block-k", nil, "sizes of contiguous blocks to find (default: half the layers)")
	f.Uint64Var(&o.Seed, "seed", 1234, "calibration sampling seed")
	f.StringVar(&o.Weights, "weights", "auto", "weights in memory: auto, resident or streaming")
	f.StringVar(&o.Device, "device", "cpu", "where the forward passes run: cpu, or cuda (GPU 0; a binary built with -tags minitron_cuda)")
	f.BoolVar(&o.NoTF32, "no-tf32", false, "with --device cuda: full f32 matrix products (no TF32 rounding of their inputs)")
	f.BoolVar(&o.BF16, "bf16", false, bf16Help)
	f.BoolVar(&o.Overwrite, "overwrite", false, "replace an existing --out file (never one of the checkpoint's own files)")
	f.StringVar(&o.Shard, "shard", "", "I/N: score part I (0-based) of N of the calibration (and layer-drop loss) samples and write mergeable partial statistics to --out (combine them with minitron importance merge); under mpirun (bin/minitron-mpi) the ranks are the shards and rank 0 writes the merged scores")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("data")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runImportance(ctx context.Context, o *ImportanceOptions, w io.Writer) error {
	agg, err := importance.ParseAggregation(o.AggBatch, o.AggSeq)
	if err != nil {
		return err
	}
	bi, loss, err := importance.ParseLayerMetrics(o.LayerMetrics)
	if err != nil {
		return fmt.Errorf("--layer-metrics: %w", err)
	}
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if err := checkBF16(o.BF16, dev); err != nil {
		return err
	}
	wm, err := model.ParseWeightMode(o.Weights)
	if err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	var shard, shards int
	if o.Shard != "" {
		if _, err := fmt.Sscanf(o.Shard, "%d/%d", &shard, &shards); err != nil || shards < 1 || shard < 0 || shard >= shards ||
			o.Shard != fmt.Sprintf("%d/%d", shard, shards) {
			return fmt.Errorf("--shard %q: want I/N with 0 ≤ I < N, e.g. 0/4", o.Shard)
		}
	}
	jc, w, err := jobComm(w)
	if err != nil {
		return err
	}
	bar := newProgressBar("importance: forward passes")
	progress := bar.Update
	if jc != nil && jc.Rank() != 0 {
		progress = nil // rank 0 alone draws
	}
	res, err := importance.Run(ctx, importance.Config{
		Shard: shard, Shards: shards, Comm: jc,
		ModelDir: o.Model, Data: o.Data, Out: o.Out, Overwrite: o.Overwrite,
		Samples: o.Samples, SeqLen: o.SeqLen, Batch: o.Batch, Seed: o.Seed,
		Aggregation: agg, MLPPoint: strings.ToLower(o.MLPPoint), BI: bi, Loss: loss, LossSamples: o.LossSamples, BlockK: o.BlockK,
		Weights: wm, Device: dev, NoTF32: o.NoTF32, BF16: o.BF16,
		Progress: progress, Version: version,
	})
	bar.Finish()
	if errors.Is(err, data.ErrOutputExists) {
		return fmt.Errorf("--out: %w (pass --overwrite)", err)
	}
	if err != nil {
		return err
	}
	if res.Scores == nil {
		p := res.Partial
		fmt.Fprintf(w, "scored shard %d/%d (samples %d-%d of %d) of %s in %s\nwrote %s (merge the shards with minitron importance merge)\n",
			p.Shard, p.Of, p.SamplesLo, p.SamplesHi-1, p.Data.Samples, o.Model,
			(time.Duration(res.Seconds * float64(time.Second))).Round(time.Millisecond), o.Out)
		return nil
	}
	sc := res.Scores
	fmt.Fprintf(w, "scored %s on %d×%d tokens of %s (%s) in %s (%.0f calibration tokens/s, layer metrics included)\n", o.Model, o.Samples, o.SeqLen, res.Split, agg,
		(time.Duration(res.Seconds * float64(time.Second))).Round(time.Millisecond), float64(sc.Data.Tokens)/res.Seconds)
	if d := sc.Depth; d != nil {
		if len(d.BI) > 0 {
			fmt.Fprintf(w, "  block importance: %s\n", fmtFloats(d.BI))
		}
		if len(d.DropLoss) > 0 {
			fmt.Fprintf(w, "  loss on %d×%d tokens of %s %.4f; with one layer dropped: %s\n", d.LossSamples, d.LossSeqLen, d.LossData, d.BaseLoss, fmtFloats(d.DropLoss))
		}
		for _, b := range d.Blocks {
			fmt.Fprintf(w, "  best block of %d layers to drop by %s: %d-%d (%.4f)\n", b.K, b.Metric, b.Start, b.Start+b.K-1, b.Value)
		}
	}
	fmt.Fprintf(w, "wrote %s\n", o.Out)
	return nil
}

func fmtFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.4f", x)
	}
	return strings.Join(s, " ")
}

// ImportanceMergeOptions are the flags of `importance merge`.
type ImportanceMergeOptions struct {
	Out       string
	Overwrite bool
}

func newImportanceMergeCmd() *cobra.Command {
	o := &ImportanceMergeOptions{}
	cmd := &cobra.Command{
		Use:   "merge PART.json...",
		Short: "Combine the partial statistics of importance --shard I/N runs into one scores file",
		Long: `Add the sums and counts of every shard's partial statistics (importance --shard I/N, run by
any scheduler: a Slurm array, a Kubernetes indexed job, separate machines) and reduce them into
the scores file of the whole run. All N shards of one run must be given, in any order; shards of
another model, data, seed, sample count or aggregation are refused. The result equals the single
run's up to the order of float64 additions (about 1e-14 relative).`,
		Example: `  minitron importance merge --out scores.json part-*.json`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImportanceMerge(o, args, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Out, "out", "", "scores file to write (required)")
	cmd.Flags().BoolVar(&o.Overwrite, "overwrite", false, "replace an existing --out file")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runImportanceMerge(o *ImportanceMergeOptions, files []string, w io.Writer) error {
	if _, err := os.Lstat(o.Out); err == nil && !o.Overwrite {
		return fmt.Errorf("--out %s exists (pass --overwrite)", o.Out)
	}
	var ps []*importance.Partial
	for _, f := range files {
		p, err := importance.LoadPartial(f)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	sc, err := importance.MergePartials(ps)
	if err != nil {
		return err
	}
	if err := sc.Save(o.Out); err != nil {
		return err
	}
	fmt.Fprintf(w, "merged %d shards (%d samples of %d tokens) into %s\n", len(ps), sc.Data.Samples, sc.Data.SeqLen, o.Out)
	return nil
}
