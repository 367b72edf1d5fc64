package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/internal/progress"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

func init() { register(newDistillCmd) }

// TrainOptions are the flags (and YAML keys) of `distill` and `train`.
type TrainOptions struct {
	Teacher     string   `yaml:"teacher"`
	Student     string   `yaml:"student"`
	Init        string   `yaml:"init"` // checkpoint | random
	Data        []string `yaml:"data"`
	Val         []string `yaml:"val"`
	ValBatches  int      `yaml:"val_batches"`
	SeqLen      int      `yaml:"seq_len"`
	MicroBatch  int      `yaml:"micro_batch"`
	GlobalBatch int      `yaml:"global_batch"`
	Steps       int      `yaml:"steps"`
	Tokens      int64    `yaml:"tokens"`
	LR          float64  `yaml:"lr"`
	MinLR       float64  `yaml:"min_lr"`
	Warmup      int      `yaml:"warmup"`
	WeightDecay float64  `yaml:"weight_decay"`
	DecayAll    bool     `yaml:"decay_all"`
	Clip        float64  `yaml:"clip"`
	CE          float64  `yaml:"ce"`
	KL          float64  `yaml:"kl"`
	ReverseKL   float64  `yaml:"reverse_kl"`
	Temperature float64  `yaml:"temperature"`
	TopK        int      `yaml:"top_k"`
	TopKCache   string   `yaml:"top_k_cache"`
	Inter       []string `yaml:"intermediate"`
	Seed        uint64   `yaml:"seed"`
	Out         string   `yaml:"out"`
	SaveEvery   int      `yaml:"save_every"`
	KeepLast    int      `yaml:"keep_last"`
	ValEvery    int      `yaml:"val_every"`
	LogEvery    int      `yaml:"log_every"`
	Resume      bool     `yaml:"resume"`
	SaveDType   string   `yaml:"save_dtype"`
	Overwrite   bool     `yaml:"overwrite"`
	TensorBoard string   `yaml:"tensorboard"`
	SkipNonFin  bool     `yaml:"skip_nonfinite"`
	Threads     int      `yaml:"threads"`
	BLASCore    string   `yaml:"blas_core"`
	Device      string   `yaml:"device"`
	BF16        bool     `yaml:"bf16"`
	Zero        int      `yaml:"zero"`
	Precision   string   `yaml:"precision"`
	Recompute   bool     `yaml:"recompute"`
	Offload     bool     `yaml:"offload_optimizer"`
	LogitChunk  int      `yaml:"logit_chunk"`
	Config      string   `yaml:"-"`
	JSON        bool     `yaml:"-"`
}

func addTrainFlags(f *pflag.FlagSet, o *TrainOptions, distilling bool) {
	if distilling {
		f.StringVar(&o.Teacher, "teacher", "", "teacher checkpoint directory (frozen)")
		f.StringVar(&o.Student, "student", "", "student checkpoint directory (e.g. the pruned model)")
		f.Float64Var(&o.KL, "kl", 0, "weight of forward KL(teacher‖student) (default 1 when no loss is set)")
		f.Float64Var(&o.ReverseKL, "reverse-kl", 0, "weight of reverse KL(student‖teacher)")
		f.Float64Var(&o.Temperature, "temperature", 1, "softmax temperature τ of the KL losses")
		f.IntVar(&o.TopK, "top-k", 0, "distil on the teacher's top-k logits only (0: all)")
		f.StringVar(&o.TopKCache, "top-k-cache", "", "directory caching the teacher's top-k logits (computed once)")
		f.StringSliceVar(&o.Inter, "intermediate", nil, "student:teacher layer pairs for the hidden-state cosine loss, e.g. 0:0,4:8 (layer = NumLayers is the final norm)")
		f.Float64Var(&o.CE, "ce", 0, "weight of cross-entropy on the labels")
	} else {
		f.StringVar(&o.Student, "model", "", "checkpoint directory to fine-tune, or (with --init random) a config.json or checkpoint dir giving the architecture")
		f.StringVar(&o.Init, "init", "checkpoint", "checkpoint (continue from the weights) or random")
	}
	f.StringSliceVar(&o.Data, "data", nil, "training data: dataset prefix(es) — a Megatron indexed dataset, or a corpus from minitron data prepare (its _train split; its _val split validates unless --val is given) — blended equally, or weighted as WEIGHT:PREFIX (0.7:a,0.3:b)")
	f.StringSliceVar(&o.Val, "val", nil, "validation data prefix(es)")
	f.IntVar(&o.ValBatches, "val-batches", 8, "micro-batches per validation")
	f.IntVar(&o.SeqLen, "seq-len", 0, "tokens per sample (required)")
	f.IntVar(&o.MicroBatch, "micro-batch", 0, "samples per forward/backward pass (required)")
	f.IntVar(&o.GlobalBatch, "global-batch", 0, "samples per optimizer step, a multiple of --micro-batch (default: micro-batch)")
	f.IntVar(&o.Steps, "steps", 0, "optimizer steps")
	f.Int64Var(&o.Tokens, "tokens", 0, "train on this many tokens (instead of --steps)")
	f.Float64Var(&o.LR, "lr", 2e-4, "peak learning rate")
	f.Float64Var(&o.MinLR, "min-lr", 4.5e-7, "learning rate at the end of the cosine decay")
	f.IntVar(&o.Warmup, "warmup", 0, "linear warmup steps")
	f.Float64Var(&o.WeightDecay, "weight-decay", 0.01, "decoupled (AdamW) weight decay")
	f.BoolVar(&o.DecayAll, "decay-all", false, "also decay norms, biases and embeddings (default: excluded)")
	f.Float64Var(&o.Clip, "clip", 1, "max global gradient norm (0: no clipping)")
	f.Uint64Var(&o.Seed, "seed", 1234, "seed for data order and initialisation")
	f.StringVar(&o.Out, "out", "", "output directory: checkpoints/, metrics.jsonl (required)")
	f.IntVar(&o.SaveEvery, "save-every", 0, "steps between checkpoints (0: only at the end)")
	f.IntVar(&o.KeepLast, "keep-last", 3, "checkpoints to keep (0: all)")
	f.StringVar(&o.SaveDType, "save-dtype", "f32", "dtype of the weights in the checkpoints: f32, bf16 or f16 (the optimizer state stays f32; a resume from bf16/f16 continues from the rounded weights)")
	f.IntVar(&o.ValEvery, "val-every", 0, "steps between validations (0: only at the end)")
	f.IntVar(&o.LogEvery, "log-every", 1, "steps between metric lines")
	f.BoolVar(&o.Resume, "resume", false, "continue from the latest checkpoint in --out")
	f.StringVar(&o.TensorBoard, "tensorboard", "", `directory for TensorBoard scalar events (loss terms, lr, grad norm, tokens/s, validation); default --out/tensorboard, "none" for none`)
	f.BoolVar(&o.Overwrite, "overwrite", false, "start over in a non-empty --out (removes its metrics, events and checkpoints); without it or --resume a used --out is refused")
	f.BoolVar(&o.SkipNonFin, "skip-nonfinite", false, "skip steps whose loss or gradient is not finite (default: stop with an error)")
	f.IntVar(&o.Threads, "threads", 0, "worker goroutines (default: all cores, divided among the ranks on the machine under mpirun/srun)")
	f.StringVar(&o.BLASCore, "blas-core", "", blasCoreHelp)
	f.BoolVar(&o.BF16, "bf16", false, "with --device cuda: bf16 products in the linear layers (f32 accumulation and master weights; the teacher's weights stored as bf16 only); the same as --precision bf16")
	f.IntVar(&o.LogitChunk, "logit-chunk", 0, "compute the logits, losses and their gradients over chunks of this many tokens, so the [tokens, vocab] logits never exist whole (0: all at once)")
	f.StringVar(&o.Precision, "precision", "f32", "with --device cuda: f32 (TF32 products) or bf16 (mixed precision, as --bf16)")
	f.BoolVar(&o.Recompute, "recompute", false, "with --device cuda: keep only each layer's input and recompute the layer in the backward pass (same gradients, a fraction of the activation memory; see minitron plan)")
	f.BoolVar(&o.Offload, "offload-optimizer", false, "with --device cuda --precision bf16 and no --zero: keep the f32 master weights and AdamW moments in host memory and run AdamW on the CPU (12 B per parameter off the GPU; see minitron plan --offload-optimizer)")
	f.StringVar(&o.Device, "device", "cpu", "where the optimizer steps run: cpu, or cuda (GPU 0; a binary built with -tags minitron_cuda, make build-cuda)")
	f.IntVar(&o.Zero, "zero", -1, "under mpirun/srun (bin/minitron-mpi): ZeRO stage of the optimizer state over the ranks: 0 every rank holds all of it, 1 the AdamW moments are sharded, 2 the reduced gradients too (default 1 with more than one rank)")
	f.StringVar(&o.Config, "config", "", "YAML file with any of these settings (snake_case keys); flags given on the command line win")
	f.BoolVar(&o.JSON, "json", false, "print the result as JSON")
}

// applyConfigFile loads o.Config into o, then re-applies the flags set on
// the command line so they win over the file.
func applyConfigFile(f *pflag.FlagSet, o *TrainOptions) error {
	if o.Config == "" {
		return nil
	}
	changed := map[string]string{}
	f.Visit(func(fl *pflag.Flag) {
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			changed[fl.Name] = strings.Join(sv.GetSlice(), ",")
		} else {
			changed[fl.Name] = fl.Value.String()
		}
	})
	b, err := os.ReadFile(o.Config)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(o); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", o.Config, err)
	}
	for name, v := range changed {
		if sv, ok := f.Lookup(name).Value.(pflag.SliceValue); ok {
			if err := sv.Replace(strings.Split(v, ",")); err != nil {
				return err
			}
			continue
		}
		if err := f.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

func (o *TrainOptions) config(distilling bool, stderr io.Writer) (distill.Config, error) {
	c := distill.Config{
		Val: o.Val, ValBatches: o.ValBatches, SeqLen: o.SeqLen, MicroBatch: o.MicroBatch,
		GlobalBatch: o.GlobalBatch, Steps: o.Steps, Tokens: o.Tokens, LR: o.LR, MinLR: o.MinLR, Warmup: o.Warmup,
		WeightDecay: o.WeightDecay, DecayAll: o.DecayAll, Clip: o.Clip, Seed: o.Seed, Out: o.Out,
		SaveEvery: o.SaveEvery, KeepLast: o.KeepLast, ValEvery: o.ValEvery, LogEvery: o.LogEvery,
		Resume: o.Resume, Overwrite: o.Overwrite, TensorBoard: o.TensorBoard, SkipNonFin: o.SkipNonFin, Workers: o.Threads, TopKCache: o.TopKCache, BF16: o.BF16,
		Losses: distill.Losses{CE: o.CE, KL: o.KL, ReverseKL: o.ReverseKL, Temperature: o.Temperature, TopK: o.TopK},
	}
	if c.Clip == 0 {
		c.Clip = -1 // the library's 0 means "default 1"
	}
	var err error
	if c.Zero, err = zeroConfig(o.Zero); err != nil {
		return c, err
	}
	bf16, err := distill.ParsePrecision(o.Precision)
	if err != nil {
		return c, fmt.Errorf("--%w", err)
	}
	c.BF16 = c.BF16 || bf16
	c.Recompute, c.LogitChunk, c.Offload = o.Recompute, o.LogitChunk, o.Offload
	if !(o.LR > 0) { // the library's 0 means "the default": here it was typed
		return c, fmt.Errorf("--lr %v: the learning rate must be positive", o.LR)
	}
	dev, err := parseDevice(o.Device)
	if err != nil {
		return c, err
	}
	c.Device = dev
	if o.SaveDType != "" {
		if c.SaveDType, err = model.ParseDType(o.SaveDType); err != nil {
			return c, fmt.Errorf("--save-dtype: %w", err)
		}
	}
	if c.Data, c.DataWeights, err = data.ParseBlend(o.Data); err != nil {
		return c, fmt.Errorf("--data: %w", err)
	}
	if o.Student == "" {
		if distilling {
			return c, errors.New("--student is required")
		}
		return c, errors.New("--model is required")
	}
	c.StudentDir = o.Student
	for _, pr := range o.Inter {
		var p distill.LayerPair
		if _, err := fmt.Sscanf(strings.TrimSpace(pr), "%d:%d", &p.Student, &p.Teacher); err != nil {
			return c, fmt.Errorf("--intermediate %q: want STUDENT:TEACHER layer numbers", pr)
		}
		c.Losses.Intermediate = append(c.Losses.Intermediate, p)
	}
	if distilling {
		if o.Teacher == "" {
			return c, errors.New("--teacher is required")
		}
		c.TeacherDir = o.Teacher
		return c, nil
	}
	c.Losses = distill.Losses{CE: 1}
	switch o.Init {
	case "checkpoint", "":
	case "random":
		c.RandomInit = true
	default:
		return c, fmt.Errorf("--init %q: want checkpoint or random", o.Init)
	}
	return c, nil
}

// trainBar shows a training run's progress on stderr (a bar on a
// terminal, a plain line at a steady interval elsewhere): Update is
// distill.Config.Progress, Finish ends it however the run ended.
type trainBar struct{ bar *progress.Bar }

func (b *trainBar) Update(p distill.Progress) {
	if b.bar == nil {
		b.bar = progress.New(int64(p.Steps), "train")
		b.bar.Resume(p.Step)
		return
	}
	m := p.Metrics
	desc := fmt.Sprintf("step %d loss %.4f", m.Step, m.Loss)
	if m.KL != 0 {
		desc += fmt.Sprintf(" kl %.4f", m.KL)
	}
	// described first: a plain line may be printed by the Add
	b.bar.Describe(fmt.Sprintf("%s %.0f tok/s eta %s", desc, p.TokensPerS, p.ETA.Round(time.Second)))
	b.bar.Add(1)
}

func (b *trainBar) Finish() {
	if b.bar != nil {
		b.bar.Finish()
	}
}

func runTraining(cmd *cobra.Command, o *TrainOptions, distilling bool) error {
	if err := applyConfigFile(cmd.Flags(), o); err != nil {
		return err
	}
	c, err := o.config(distilling, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if _, err := kernels.SetBLASCore(o.BLASCore); err != nil {
		return fmt.Errorf("--blas-core: %w", err)
	}
	// The first Ctrl-C checkpoints and exits 0; restoring the default
	// handler then lets a second one kill a run stuck in a long step.
	// a bar on a terminal, else a plain line every progress.Interval
	world, err := jobWorld()
	if err != nil {
		return err
	}
	if c.Workers == 0 && comm.LocalRanks() > 1 {
		// the ranks on this machine share its cores
		c.Workers = max(1, runtime.NumCPU()/comm.LocalRanks())
	}
	sigs := []os.Signal{os.Interrupt}
	if world.Size() > 1 || o.Zero >= 0 {
		// a ZeRO stage given to one process runs the data-parallel path
		// alone (on a GPU: through NCCL), to check it against a plain run
		c.Comm = world
		// launchers pass Ctrl-C on to the ranks as SIGTERM (mpirun) or
		// SIGINT (srun): either stops every rank after the same step
		sigs = append(sigs, syscall.SIGTERM)
	}
	if world.Rank() != 0 {
		// rank 0 alone prints: the others' output would repeat it
		cmd.SetOut(io.Discard)
	} else {
		bar := &trainBar{}
		c.Progress = bar.Update
		defer bar.Finish()
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), sigs...)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	res, err := distill.Run(ctx, c)
	if errors.Is(err, distill.ErrOutNotEmpty) {
		return fmt.Errorf("%s; continue it with --resume or start over with --overwrite", err)
	}
	if nf := (*distill.NonFiniteError)(nil); errors.As(err, &nf) {
		return fmt.Errorf("step %d: %s is %v (--skip-nonfinite skips such steps)", nf.Step, nf.What, nf.Value)
	}
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if o.JSON {
		out := map[string]any{"steps": res.Steps, "tokens": res.Tokens, "loss": res.Loss,
			"tokens_per_s": res.TokensPerS, "checkpoint": res.Checkpoint, "interrupted": res.Interrupted}
		if !math.IsNaN(res.ValLoss) {
			out["val_loss"] = res.ValLoss
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(w, "%s\n", b)
		return nil
	}
	if res.Interrupted && world.Rank() == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "interrupted at step %d; resume with --resume\n", res.Steps)
	}
	fmt.Fprintf(w, "steps %d  tokens %d  loss %.4f", res.Steps, res.Tokens, res.Loss)
	if !math.IsNaN(res.ValLoss) {
		fmt.Fprintf(w, "  val loss %.4f", res.ValLoss)
	}
	fmt.Fprintf(w, "  %.0f tokens/s\ncheckpoint %s\n", res.TokensPerS, res.Checkpoint)
	return nil
}

func newDistillCmd() *cobra.Command {
	o := &TrainOptions{}
	cmd := &cobra.Command{
		Use:   "distill",
		Short: "Retrain a (pruned) student by logit distillation from a frozen teacher",
		Long: `Distil a student from a frozen teacher on a token stream: forward KL(teacher‖student) at
temperature τ by default (the paper's best setting), optionally mixed with cross-entropy on the
labels and reverse KL, optionally on the teacher's top-k logits (cached on disk with
--top-k-cache). AdamW with decoupled weight decay, global-norm clipping, linear warmup then cosine
decay from --lr to --min-lr, gradient accumulation (--global-batch / --micro-batch micro-steps).
Teacher and student must share the vocabulary.

Writes --out/metrics.jsonl (one JSON line per step: step, lr, loss, kl, ce, grad_norm,
tokens_per_s, val_loss) and --out/checkpoints/step-NNNNNNN (a Hugging Face checkpoint plus
optimizer.bin and trainer_state.json; --out/checkpoints/latest names the newest). --resume
continues from it with exactly the losses of an uninterrupted run; Ctrl-C writes a checkpoint
and exits 0. Settings may come from a YAML file (--config, snake_case keys); flags win.

--device cuda (a binary built with -tags minitron_cuda) runs each optimizer step on GPU 0
(student, teacher, gradients and AdamW moments stay on the device; validation too) in the same
loop: data order, schedule, metrics, checkpoints and --resume are unchanged, and checkpoints are
the same files, so a run can resume on either device. Every loss runs there: --ce, --kl,
--reverse-kl with --temperature, --top-k, --intermediate, with gradient accumulation and
--skip-nonfinite. Only --top-k-cache is refused (the teacher runs on the device each step).
--precision bf16 (or --bf16) adds mixed precision there (bf16 linear-layer products, f32
master weights), --recompute recomputes each layer in the backward pass instead of keeping
its activations, and --offload-optimizer (with bf16, no --zero) keeps the f32 master weights
and AdamW moments in host memory, running AdamW on the CPU; 'minitron plan' says what fits.

Under mpirun or srun (bin/minitron-mpi, make build-mpi; bin/minitron-cuda-mpi on GPUs) each rank
trains its share of every global batch and the gradients are summed over the ranks; --zero shards
the optimizer state over them, rank 0 alone prints and writes the weights, and checkpoints resume
on any number of ranks. --threads defaults to the cores divided by the ranks on the machine. See
the README's "On a cluster".`,
		Example: `  minitron distill --teacher ./teacher --student ./pruned --data data/opticks_train --val data/opticks_val \
      --seq-len 256 --micro-batch 8 --global-batch 32 --steps 400 --lr 2e-4 --min-lr 4.5e-7 --warmup 20 --out runs/d1
  minitron distill --config run.yaml --steps 100      # flags override the file
  minitron distill --config run.yaml --resume
  minitron distill --teacher ./teacher --student ./pruned --data data/opticks_train --seq-len 1024 \
      --micro-batch 8 --steps 400 --device cuda --out runs/d1-gpu
  # a 4.5B student beside its 8B teacher on one 80 GB GPU (minitron plan: 42.7 GB)
  minitron distill --teacher ./llama-3.1-8b --student ./pruned-4b --data data/train --seq-len 4096 \
      --micro-batch 1 --global-batch 64 --device cuda --precision bf16 --recompute --logit-chunk 1024 \
      --offload-optimizer --out runs/4b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runTraining(cmd, o, true) },
	}
	addTrainFlags(cmd.Flags(), o, true)
	return cmd
}
