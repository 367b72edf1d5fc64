package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/minitron-dev/minitron/distill"
	"github.com/spf13/cobra"
)

func init() { register(newPlanCmd) }

// PlanOptions are the flags of `plan`.
type PlanOptions struct {
	Teacher, Student string
	SeqLen           int
	MicroBatch       int
	GlobalBatch      int
	Precision        string
	World            int
	Zero             int
	Recompute        bool
	Offload          bool
	LogitChunk       int
	CE, KL, RKL      float64
	TopK             int
	JSON             bool
}

func newPlanCmd() *cobra.Command {
	o := &PlanOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Device memory per GPU of a distillation run, by part, from config files alone",
		Long: `plan prints the device memory one GPU of a --device cuda distillation (or training)
run holds at its peak: teacher weights, student weights, gradients, f32 master weights and
AdamW moments, activations, logit chunks and kernel workspace, and their total. It counts
every buffer the CUDA engine allocates, rounded as its memory pool rounds them (checked
against the pool's measured peak); the CUDA context and cuBLAS's workspace, about
0.5-1 GB outside the pool, come on top. The formula is documented at distill.NewPlan.

--teacher and --student take a config.json, a checkpoint directory, or FAMILY:SIZE, one of
the named shapes of 'minitron init --size' (nemotron:nemotron-4-15b, nemotron:minitron-8b,
nemotron:minitron-4b, llama:llama-3.1-8b, llama:llama-3.1-minitron-4b, ...).

--world-size and --zero describe a data-parallel run: --zero 1 shards the f32 master
weights and moments over the ranks, --zero 2 the gradients too. --offload-optimizer
(bf16, --zero 0) keeps the f32 master weights and moments in host memory instead, as
distill --offload-optimizer does, and prints the host memory that takes.`,
		Example: `  minitron plan --teacher nemotron:nemotron-4-15b --student nemotron:minitron-8b \
      --seq-len 4096 --micro-batch 1 --precision bf16 --world-size 8 --zero 2 --recompute --logit-chunk 1024
  minitron plan --teacher llama:llama-3.1-8b --student llama:llama-3.1-minitron-4b \
      --seq-len 4096 --precision bf16 --recompute --logit-chunk 1024 --offload-optimizer
  minitron plan --student ./pruned --teacher ./teacher --seq-len 2048 --micro-batch 4 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPlan(cmd.OutOrStdout(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.Teacher, "teacher", "", "teacher config.json, checkpoint dir or FAMILY:SIZE (none: training without a teacher)")
	f.StringVar(&o.Student, "student", "", "student config.json, checkpoint dir or FAMILY:SIZE (required)")
	f.IntVar(&o.SeqLen, "seq-len", 0, "tokens per sample (required)")
	f.IntVar(&o.MicroBatch, "micro-batch", 1, "samples per forward/backward pass on each GPU")
	f.IntVar(&o.GlobalBatch, "global-batch", 0, "samples per optimizer step over all GPUs (default: micro-batch × world size, no accumulation)")
	f.StringVar(&o.Precision, "precision", "f32", "f32 (TF32 products) or bf16 (bf16 weights and products, f32 master weights and moments)")
	f.IntVar(&o.World, "world-size", 1, "data-parallel GPUs")
	f.IntVar(&o.Zero, "zero", 0, "optimizer sharding over the GPUs: 0 none, 1 master weights and moments, 2 also gradients")
	f.BoolVar(&o.Recompute, "recompute", false, "keep only each layer's input and recompute the layer in the backward pass")
	f.BoolVar(&o.Offload, "offload-optimizer", false, "with --precision bf16 and --zero 0: f32 master weights and AdamW moments in host memory, AdamW on the CPU")
	f.IntVar(&o.LogitChunk, "logit-chunk", 0, "tokens per logit chunk (0: the whole micro-batch at once)")
	f.Float64Var(&o.CE, "ce", 0, "weight of cross-entropy (default 1 without a teacher)")
	f.Float64Var(&o.KL, "kl", 0, "weight of forward KL (default 1 with a teacher)")
	f.Float64Var(&o.RKL, "reverse-kl", 0, "weight of reverse KL")
	f.IntVar(&o.TopK, "top-k", 0, "forward KL on the teacher's top-k logits only")
	f.BoolVar(&o.JSON, "json", false, `print {"per_gpu_bytes": N, "parts": {...}} as JSON`)
	return cmd
}

func runPlan(w io.Writer, o *PlanOptions) error {
	if o.Student == "" {
		return errors.New("--student is required")
	}
	if o.SeqLen <= 0 {
		return errors.New("--seq-len is required (tokens per sample)")
	}
	if o.MicroBatch <= 0 || o.World <= 0 {
		return fmt.Errorf("--micro-batch %d and --world-size %d must be positive", o.MicroBatch, o.World)
	}
	c := distill.PlanConfig{Seq: o.SeqLen, Batch: o.MicroBatch, Precision: o.Precision, World: o.World, Zero: o.Zero,
		Recompute: o.Recompute, LogitChunk: o.LogitChunk, Offload: o.Offload,
		Losses: distill.Losses{CE: o.CE, KL: o.KL, ReverseKL: o.RKL, TopK: o.TopK}}
	var err error
	if c.Student, err = distill.PlanModelConfig(o.Student); err != nil {
		return fmt.Errorf("--student: %w", err)
	}
	if o.Teacher != "" {
		if c.Teacher, err = distill.PlanModelConfig(o.Teacher); err != nil {
			return fmt.Errorf("--teacher: %w", err)
		}
	}
	c.Losses = c.Losses.OrDefault(c.Teacher != nil)
	if o.GlobalBatch > 0 {
		per := o.MicroBatch * o.World
		if o.GlobalBatch%per != 0 {
			return fmt.Errorf("--global-batch %d is not a multiple of micro-batch × world size = %d", o.GlobalBatch, per)
		}
		c.Accum = o.GlobalBatch / per
	}
	p, err := distill.NewPlan(c)
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(w, p)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "part\tGB\tGiB\t\n")
	row := func(name string, b int64) {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t\n", name, float64(b)/1e9, float64(b)/(1<<30))
	}
	for _, x := range p.Parts {
		row(x.Name, x.Bytes)
	}
	row("per GPU", p.PerGPUBytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "student %.2fB parameters", float64(p.StudentParams)/1e9)
	if p.TeacherParams > 0 {
		fmt.Fprintf(w, ", teacher %.2fB", float64(p.TeacherParams)/1e9)
	}
	fmt.Fprintln(w, "; the CUDA context and cuBLAS's workspace (about 0.5-1 GB) come on top")
	if p.HostBytes > 0 {
		fmt.Fprintf(w, "host memory for the offloaded optimizer: %.2f GB per GPU\n", float64(p.HostBytes)/1e9)
	}
	return nil
}
