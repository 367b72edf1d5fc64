package distill

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/internal/tbevents"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// Config is one training run: plain training (Losses.CE only, no teacher)
// or distillation (a teacher and KL losses). The zero value of every
// optional field means the documented default.
type Config struct {
	// Student: either a checkpoint directory, or (StudentConfig +
	// StudentWeights) from a library caller such as the architecture
	// search, or StudentConfig with RandomInit.
	StudentDir     string
	StudentConfig  *model.Config
	StudentWeights model.TensorSource
	RandomInit     bool // initialise the weights randomly (seeded by Seed)

	// Teacher: a checkpoint directory or an already loaded model (frozen).
	TeacherDir string
	Teacher    *model.Model

	// Data: dataset prefixes — a Megatron indexed dataset, or a corpus
	// prepared by data.PrepareCorpus, whose _train split is trained on and
	// whose _val split validates when Val is not given — blended with
	// DataWeights (nil: equal); or a ready sampler. Validation likewise
	// (optional).
	Data        []string
	DataWeights []float64
	Train       data.Sampler
	Val         []string
	ValSampler  data.Sampler
	ValBatches  int // micro-batches per validation (default 8)

	SeqLen, MicroBatch, GlobalBatch int
	Steps                           int   // optimizer steps
	Tokens                          int64 // alternative to Steps: train on this many tokens

	LR, MinLR   float64 // default 2e-4 and 4.5e-7 (the paper's)
	Warmup      int
	WeightDecay float64 // decoupled weight decay (0: none)
	DecayAll    bool    // also decay norms, biases, embeddings
	Clip        float64 // max global grad norm (default 1; negative disables)
	Losses      Losses
	Seed        uint64

	Out       string // output directory (checkpoints/, metrics.jsonl); "" writes no files (e.g. search candidates)
	SaveEvery int    // steps between checkpoints (0: only at the end)
	KeepLast  int    // checkpoints kept (0: all)
	ValEvery  int    // steps between validations (0: only at the end)
	LogEvery  int    // steps between metric lines (default 1)
	Resume    bool   // continue from Out's latest checkpoint
	// SaveDType is the dtype of the weights in the checkpoints the run
	// writes: "" or F32 (the default), BF16 or F16 (half the bytes). The
	// optimizer state stays f32; a run resumed from a bf16/f16 checkpoint
	// continues from the rounded weights, so its steps differ slightly
	// from those of an uninterrupted run (keep F32 for exact resumes).
	SaveDType model.DType
	// TensorBoard is the directory of the run's TensorBoard scalar events
	// (each logged step's loss terms, lr, grad norm, tokens/s, validation);
	// "" means Out/tensorboard (none without Out), "none" writes none.
	TensorBoard string
	// Overwrite starts over in a non-empty Out, removing a previous run's
	// metrics, events and checkpoints; without it (or Resume) a non-empty
	// Out is refused.
	Overwrite  bool
	SkipNonFin bool   // skip steps with a non-finite loss instead of failing
	Workers    int    // kernel goroutines (0: all cores)
	TopKCache  string // directory caching the teacher's top-k logits
	// Device runs the optimizer steps on the CPU (the default) or on GPU 0
	// (device.CUDA: package gpu's engine, in a binary built with -tags
	// minitron_cuda; every loss, without a top-k cache).
	Device device.Kind
	// NoTF32 keeps the device's f32 matrix products in full f32 (cuBLAS
	// default math) instead of TF32 tensor-op math: slower, closer to the CPU.
	NoTF32 bool
	// BF16 (Device "cuda" only) runs the linear layers' products in bf16
	// with f32 accumulation and f32 master weights (mixed precision).
	BF16 bool
	// Recompute (Device "cuda" only) keeps only each layer's input and
	// recomputes the layer in the backward pass: the same gradients with
	// the activations of one layer instead of all (see NewPlan).
	Recompute bool
	// Offload (Device "cuda" with BF16 and no Zero stage) keeps the f32
	// master weights and AdamW moments in host memory and runs AdamW on
	// the CPU: 12 B per parameter off the GPU, for a gradient download and
	// a weight upload (2 B per parameter each) per optimizer step.
	Offload bool
	// LogitChunk > 0 computes the logits, losses and their gradients over
	// chunks of that many tokens, so that the student's and the teacher's
	// [tokens, vocab] logits never exist whole (a 256k vocabulary makes
	// them 1 GB per 1,024 tokens per model in f32). 0: all at once.
	LogitChunk int

	// Comm makes the run one rank of a data-parallel job (nil, or a world
	// of one without a Zero stage, runs alone): every rank draws the same global batch, takes
	// its contiguous share of the micro-batches (GlobalBatch/MicroBatch
	// must be a multiple of the ranks), and the gradients are summed over
	// the ranks, so the steps equal one process's up to the order of the
	// sums. Only rank 0 writes metrics, events and the weights; Out must be
	// the same shared directory on every rank. A rank whose Run returns an
	// error must end the job (Comm.Abort, as the CLI does): the others may
	// be waiting for it in a collective.
	Comm comm.Communicator
	// Zero is the ZeRO stage of a run over more than one rank: 1 (the
	// default, ZeroDefault) shards the AdamW moments over the ranks
	// (gradients reduce-scattered, each rank updates its part of the
	// weights, which are then all-gathered); 2 also keeps only the
	// rank's part of the step's gradient sum, reduced after every
	// micro-batch; ZeroReplicated (-1) keeps everything on every rank
	// (gradients all-reduced).
	Zero int

	// Metrics receives JSONL metric lines in addition to Out/metrics.jsonl.
	Metrics io.Writer
	// Progress, if set, is told the run's position before the first step
	// and after every step (the CLI draws a bar with it).
	Progress func(Progress)
	// OnStep, if set, is called after every optimizer step.
	OnStep func(StepMetrics)
}

// Result summarises a finished (or interrupted) run.
type Result struct {
	Steps       int     `json:"steps"`
	Tokens      int64   `json:"tokens"`
	Loss        float64 `json:"loss"`     // last step's training loss
	ValLoss     float64 `json:"val_loss"` // final validation LM loss (CE); NaN without validation data
	ValKL       float64 `json:"val_kl,omitempty"`
	TokensPerS  float64 `json:"tokens_per_s"`
	Checkpoint  string  `json:"checkpoint"` // the last checkpoint written
	Interrupted bool    `json:"interrupted,omitempty"`
}

func (c *Config) defaults() error {
	if c.LR == 0 {
		c.LR = 2e-4
	}
	if c.MinLR == 0 {
		c.MinLR = 4.5e-7
	}
	if c.Clip == 0 {
		c.Clip = 1
	}
	if c.Clip < 0 {
		c.Clip = 0
	}
	if c.ValBatches == 0 {
		c.ValBatches = 8
	}
	if c.LogEvery == 0 {
		c.LogEvery = 1
	}
	c.Losses = c.Losses.OrDefault(c.TeacherDir != "" || c.Teacher != nil)
	if c.SeqLen <= 0 || c.MicroBatch <= 0 {
		return fmt.Errorf("seq-len (%d) and micro-batch (%d) must be positive", c.SeqLen, c.MicroBatch)
	}
	if c.LogitChunk < 0 {
		return fmt.Errorf("logit chunk %d must be ≥ 0 (0: all tokens at once)", c.LogitChunk)
	}
	if c.GlobalBatch == 0 {
		c.GlobalBatch = c.MicroBatch
	}
	if c.GlobalBatch%c.MicroBatch != 0 {
		return fmt.Errorf("global batch %d is not a multiple of the micro-batch %d", c.GlobalBatch, c.MicroBatch)
	}
	if c.parallel() {
		w := c.world()
		if a := c.GlobalBatch / c.MicroBatch; a%w != 0 {
			return fmt.Errorf("%d micro-batches per step (global batch %d / micro-batch %d) do not divide over %d ranks", a, c.GlobalBatch, c.MicroBatch, w)
		}
		if c.Zero < ZeroReplicated || c.Zero > 2 {
			return fmt.Errorf("ZeRO stage %d: want 0 (replicated), 1 or 2", max(c.Zero, 0))
		}
		if c.TopKCache != "" && w > 1 {
			return errors.New("TopKCache with more than one rank: the ranks would write the same cache; drop it")
		}
	}
	if c.Steps > 0 && c.Tokens > 0 {
		return fmt.Errorf("give the number of steps or of tokens, not both (steps %d, tokens %d)", c.Steps, c.Tokens)
	}
	if c.Steps <= 0 && c.Tokens > 0 {
		per := int64(c.GlobalBatch * c.SeqLen)
		c.Steps = int((c.Tokens + per - 1) / per)
	}
	if c.Steps <= 0 {
		return fmt.Errorf("set the number of steps (Steps) or tokens (Tokens)")
	}
	if c.Warmup < 0 || c.Warmup > c.Steps {
		return fmt.Errorf("warmup %d must be between 0 and the %d steps", c.Warmup, c.Steps)
	}
	if c.Out == "" && (c.Resume || c.SaveEvery > 0) {
		return fmt.Errorf("no output directory (Out) for checkpoints")
	}
	switch c.SaveDType {
	case "", model.F32, model.BF16, model.F16:
	default:
		return fmt.Errorf("SaveDType %q is not supported (want F32, BF16 or F16)", c.SaveDType)
	}
	return nil
}

// world is the number of ranks of the run.
func (c *Config) world() int {
	if c.Comm == nil {
		return 1
	}
	return c.Comm.Size()
}

// parallel reports a data-parallel run: more than one rank, or a world of
// one that asked for a ZeRO stage (the same path, e.g. to check a
// communicator on one GPU against the run without one).
func (c *Config) parallel() bool {
	return c.Comm != nil && (c.Comm.Size() > 1 || c.Zero != ZeroDefault)
}

// rank is this process's rank (0 alone).
func (c *Config) rank() int {
	if c.Comm == nil {
		return 0
	}
	return c.Comm.Rank()
}

// zeroStage is the ZeRO stage the run uses (0 alone).
func (c *Config) zeroStage() int {
	switch {
	case !c.parallel() || c.Zero == ZeroReplicated:
		return 0
	case c.Zero == ZeroDefault:
		return 1
	}
	return c.Zero
}

// agree makes every rank return an error when one of them has one, so no
// rank waits in a collective for a rank that gave up; alone it returns err.
func (r *run) agree(err error) error { return comm.Agree(r.c.Comm, err) }

// stopWished reports whether the run stops before the next step: when
// this rank wishes it (SIGINT) or, data parallel, any rank does, so that
// every rank stops at the same step.
func (r *run) stopWished(wish bool) bool {
	c := r.c.Comm
	if c == nil || c.Size() == 1 {
		return wish
	}
	v := []float64{0}
	if wish {
		v[0] = 1
	}
	if err := c.AllReduceF64(v); err != nil {
		return true // the step's collectives would fail too; stop and save what can be saved
	}
	return v[0] > 0
}

// fingerprint names the settings a resumed run must share with the
// original for its losses to match.
func (c *Config) fingerprint() string {
	l := c.Losses
	l.TeacherHidden = 0 // derived from the teacher, set after this is first computed
	return fmt.Sprintf("seq=%d micro=%d global=%d steps=%d lr=%g min=%g warm=%d wd=%g decayall=%t clip=%g loss=%+v seed=%d",
		c.SeqLen, c.MicroBatch, c.GlobalBatch, c.Steps, c.LR, c.MinLR, c.Warmup, c.WeightDecay, c.DecayAll, c.Clip, l, c.Seed)
}

// Run trains the student as c says and returns the final metrics. When ctx
// is cancelled (SIGINT in the CLI) it writes a checkpoint and returns with
// Interrupted set and no error.
func Run(ctx context.Context, c Config) (Result, error) {
	r := &run{c: c, res: Result{ValLoss: math.NaN()}}
	defer r.close()
	if err := r.setup(); err != nil {
		return r.res, err
	}
	err := r.loop(ctx)
	return r.res, err
}

// run is one Run in progress: what setup opened, in the order loop needs it.
type run struct {
	c         Config
	dev       device.Kind
	ck        *checkpointer
	resumeDir string
	rstate    TrainerState
	teacher   *model.Model
	cfg       *model.Config // the student's
	tr        *Trainer
	train     data.Sampler
	val       [][][]int32
	metrics   io.Writer
	events    io.Writer
	tb        *tbevents.Writer
	savedStep int    // the step whose checkpoint exists (resumed or written), -1 for none
	tid       string // teacherID, once computed
	res       Result
	closers   []func() error
}

func (r *run) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// setup checks the settings and opens the run's parts: the resume point,
// the teacher, the engine with the student, the data and the metrics file.
func (r *run) setup() error {
	c := &r.c
	if err := c.validateNumbers(); err != nil {
		return err
	}
	if err := c.defaults(); err != nil {
		return err
	}
	if err := c.Losses.Validate(); err != nil {
		return err
	}
	var err error
	if r.dev, err = device.ParseBuilt(string(c.Device)); err != nil {
		return err
	}
	if err := c.checkDevice(r.dev); err != nil {
		return err
	}
	if c.Out != "" && c.rank() == 0 {
		err = c.prepareOut()
	}
	if err := r.agree(err); err != nil {
		return err
	}
	if c.Workers > 0 {
		old := kernels.SetWorkers(c.Workers)
		r.closers = append(r.closers, func() error { kernels.SetWorkers(old); return nil })
	}
	kernels.SetBLASThreads(1)
	if err := r.openResume(); err != nil {
		return err
	}
	if err := r.openTeacher(); err != nil {
		return err
	}
	if err := r.checkResumeContext(); err != nil {
		return err
	}
	if err := r.agree(r.openEngine()); err != nil {
		return err
	}
	if err := r.agree(r.openData()); err != nil {
		return err
	}
	if c.rank() != 0 {
		r.metrics, r.events = io.Discard, io.Discard
		return nil
	}
	return r.openMetrics()
}

// checkDevice names the first setting device k cannot run, so that a run
// never silently trains something else.
func (c *Config) checkDevice(k device.Kind) error {
	switch {
	case k == device.CPU && c.BF16:
		return errors.New("BF16 needs Device cuda (the CPU engine trains in f32)")
	case k == device.CPU && c.Recompute:
		return errors.New("Recompute needs Device cuda (the CPU engine keeps its graph's activations)")
	case c.Offload && (k != device.CUDA || !c.BF16):
		return errors.New("Offload needs Device cuda and BF16 (it keeps the f32 master weights of bf16 weights on the host)")
	case c.Offload && c.zeroStage() != 0:
		return errors.New("Offload keeps every master weight and moment on each rank's host: it does not combine with a Zero stage")
	case k == device.CUDA && c.TopKCache != "" && c.Losses.TopK > 0:
		return errors.New("Device cuda: TopKCache is not used on the device (the teacher runs there each step); drop it or train on the CPU")
	}
	return nil
}

// openResume finds the checkpoint a Resume run continues from and checks
// that it was made with the same settings.
func (r *run) openResume() error {
	c := &r.c
	r.ck = &checkpointer{dir: c.Out, keep: c.KeepLast, dtype: c.SaveDType}
	r.savedStep = -1
	if st, err := os.Stat(c.StudentDir); err == nil && st.IsDir() {
		r.ck.tokenizerDir = c.StudentDir // carry the tokenizer into every checkpoint
	}
	if !c.Resume {
		return nil
	}
	var err error
	if r.resumeDir, err = r.ck.latest(); err != nil || r.resumeDir == "" {
		return err
	}
	if r.rstate, err = readTrainerState(r.resumeDir); err != nil {
		return err
	}
	if r.rstate.Fingerprint != c.fingerprint() {
		return fmt.Errorf("cannot resume from %s: settings differ: %s", r.resumeDir, fingerprintDiff(r.rstate.Fingerprint, c.fingerprint()))
	}
	r.res.Tokens = r.rstate.Tokens
	r.res.Checkpoint = r.resumeDir
	r.res.Steps, r.res.Loss = r.rstate.Step, math.NaN()
	if l := r.rstate.Loss; l != nil {
		r.res.Loss = *l
	}
	r.savedStep = r.rstate.Step
	return nil
}

// workers is the kernel goroutine count that the CPU engine's steps may
// depend on (the order of split reductions); 0 on a device, whose steps do
// not run on them.
func (r *run) workers() int {
	if r.dev != device.CPU {
		return 0
	}
	return kernels.Workers()
}

// checkResumeContext refuses a resume whose teacher or kernel workers
// differ from the checkpoint's (recorded since they were added): either
// would make the resumed steps differ from the uninterrupted run's.
func (r *run) checkResumeContext() error {
	st := r.rstate
	if r.resumeDir == "" {
		return nil
	}
	if id := r.teacherID(); st.Teacher != "" && st.Teacher != id {
		return fmt.Errorf("cannot resume from %s: another teacher (checkpoint's %s, now %s)", r.resumeDir, st.Teacher, id)
	}
	if w := r.workers(); st.Workers != 0 && w != 0 && st.Workers != w {
		return fmt.Errorf("cannot resume from %s: it ran with %d kernel workers, this run has %d (set Workers to %d to resume it)", r.resumeDir, st.Workers, w, st.Workers)
	}
	return nil
}

// openTeacher loads the teacher when the losses need one.
func (r *run) openTeacher() error {
	c := &r.c
	r.teacher = c.Teacher
	if r.teacher == nil && c.TeacherDir != "" {
		// A device engine copies the teacher's weights up once, tensor by
		// tensor: an f32 host copy too would double what a large teacher
		// costs.
		opt := model.Options{}
		if r.dev != device.CPU {
			opt.Weights = model.WeightsStreaming
		}
		t, err := model.Load(c.TeacherDir, opt)
		if err != nil {
			return fmt.Errorf("teacher: %w", err)
		}
		r.teacher = t
		r.closers = append(r.closers, t.Close)
	}
	if r.teacher == nil && c.Losses.NeedsTeacher() {
		return fmt.Errorf("the losses (kl %g, reverse_kl %g) need a teacher (TeacherDir or Teacher)", c.Losses.KL, c.Losses.ReverseKL)
	}
	return nil
}

// openEngine builds the device's engine from the student's initial weights
// (or the resume checkpoint's, with its optimizer state) and the trainer
// over it.
func (r *run) openEngine() error {
	c := &r.c
	cfg, src, closeSrc, err := c.studentSource(r.resumeDir)
	if err != nil {
		return err
	}
	if closeSrc != nil {
		defer closeSrc()
	}
	r.cfg = cfg
	if err := cfg.CheckPositions(0, c.SeqLen); err != nil {
		return fmt.Errorf("student: SeqLen: %w", err)
	}
	if r.teacher != nil {
		if err := r.teacher.Cfg.CheckPositions(0, c.SeqLen); err != nil {
			return fmt.Errorf("teacher: SeqLen: %w", err)
		}
	}
	if r.teacher != nil && r.teacher.Cfg.VocabSize != cfg.VocabSize {
		return fmt.Errorf("teacher vocabulary has %d tokens, student %d: distillation needs the same tokenizer", r.teacher.Cfg.VocabSize, cfg.VocabSize)
	}
	if len(c.Losses.Intermediate) > 0 {
		var tcfg *model.Config
		if r.teacher != nil {
			tcfg = r.teacher.Cfg
			c.Losses.TeacherHidden = tcfg.HiddenSize
		}
		if err := CheckPairs(c.Losses.Intermediate, cfg, tcfg); err != nil {
			return err
		}
	}
	arch, err := model.NewArch(cfg, src)
	if err != nil {
		return fmt.Errorf("student: %w", err)
	}
	ec := EngineConfig{Arch: arch, Weights: src, Teacher: r.teacher,
		Batch: c.MicroBatch, Seq: c.SeqLen, Losses: c.Losses, Optim: c.optim(), NoTF32: c.NoTF32, BF16: c.BF16, Recompute: c.Recompute, LogitChunk: c.LogitChunk, Zero: c.zeroStage(), Offload: c.Offload}
	if c.TopKCache != "" && c.Losses.TopK > 0 && r.teacher != nil {
		if ec.TopKCache, err = OpenTopKCache(c.TopKCache, r.teacher, c.Losses.TopK, c.SeqLen, c.MicroBatch); err != nil {
			return err
		}
	}
	eng, err := NewEngine(r.dev, ec)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, eng.Close)
	r.tr = &Trainer{Engine: eng, Optim: ec.Optim, Sched: Schedule{LR: c.LR, MinLR: c.MinLR, Warmup: c.Warmup, Steps: c.Steps}}
	if c.parallel() {
		cm := c.Comm
		if r.dev != device.CPU {
			// device buffers: NCCL where this binary has it (the CUDA
			// build), else the host communicator (the CUDA emulator's
			// device memory is host memory)
			dc, own, err := comm.ForDevice(cm)
			if err != nil {
				return err
			}
			if own {
				r.closers = append(r.closers, dc.Close)
			}
			cm = dc
		}
		if r.tr.dp, err = newDataParallel(cm, eng, c.zeroStage()); err != nil {
			return err
		}
	}
	if r.resumeDir != "" {
		if r.tr.AdamStep, err = loadOptimizer(r.resumeDir, eng, r.tr.dp); err != nil {
			return err
		}
		r.tr.Step = r.rstate.Step
	}
	return nil
}

// optim is the run's optimizer: torch's AdamW defaults with the run's
// weight decay and clipping.
func (c *Config) optim() Optim {
	o := DefaultOptim()
	o.WeightDecay, o.DecayAll, o.Clip = c.WeightDecay, c.DecayAll, c.Clip
	return o
}

// openData opens the training sampler (positioned at the resume point) and
// reads the fixed validation batches.
func (r *run) openData() error {
	c := &r.c
	r.train = c.Train
	if r.train == nil {
		if len(c.Data) == 0 {
			return fmt.Errorf("no training data (Data: a dataset prefix)")
		}
		train, val, err := c.splits()
		if err != nil {
			return err
		}
		if len(c.Val) == 0 && c.ValSampler == nil {
			c.Val = val
		}
		s, closeData, err := data.OpenBlend(train, c.DataWeights, data.SamplerOptions{SeqLen: c.SeqLen, Seed: c.Seed})
		if err != nil {
			return fmt.Errorf("training data: %w", err)
		}
		r.train = s
		r.closers = append(r.closers, closeData)
	}
	if r.train.SeqLen() != c.SeqLen {
		return fmt.Errorf("training sampler serves sequence length %d, run wants %d", r.train.SeqLen(), c.SeqLen)
	}
	if r.resumeDir != "" {
		if err := r.train.Restore(r.rstate.Sampler); err != nil {
			return fmt.Errorf("resume %s: data position: %w", r.resumeDir, err)
		}
	}
	var err error
	r.val, err = c.validationBatches()
	return err
}

// openMetrics opens Out/metrics.jsonl (one line per logged step) and
// Out/events.jsonl (checkpoints, interruptions) for appending. A resumed
// run first drops the metrics of steps after its checkpoint (all of them
// when it found none): a killed run logged steps that the resumed run
// repeats.
func (r *run) openMetrics() error {
	c := &r.c
	var ws []io.Writer
	r.events = io.Discard
	if c.Out != "" {
		path := filepath.Join(c.Out, "metrics.jsonl")
		if c.Resume {
			if err := truncateMetrics(path, max(r.rstate.Step, 0)); err != nil {
				return fmt.Errorf("metrics: %w", err)
			}
		}
		mf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		r.closers = append(r.closers, mf.Close)
		ws = append(ws, mf)
		ef, err := os.OpenFile(filepath.Join(c.Out, "events.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("events: %w", err)
		}
		r.closers = append(r.closers, ef.Close)
		r.events = ef
	}
	if c.Metrics != nil {
		ws = append(ws, c.Metrics)
	}
	r.metrics = io.MultiWriter(ws...)
	tb := c.TensorBoard
	if tb == "" && c.Out != "" {
		tb = filepath.Join(c.Out, "tensorboard")
	}
	if tb != "" && tb != "none" {
		w, err := tbevents.Create(tb)
		if err != nil {
			return fmt.Errorf("tensorboard: %w", err)
		}
		r.tb = w
		r.closers = append(r.closers, w.Close)
	}
	return nil
}

// scalars writes a metrics line's numbers to TensorBoard: train/NAME, and
// val/NAME for the validation's val_NAME.
func (r *run) scalars(line map[string]any) error {
	if r.tb == nil {
		return nil
	}
	vals := map[string]float64{}
	for k, v := range line {
		f, ok := v.(float64)
		if !ok || k == "step" || k == "tokens" {
			continue
		}
		if name, isVal := strings.CutPrefix(k, "val_"); isVal {
			vals["val/"+name] = f
		} else {
			vals["train/"+k] = f
		}
	}
	return r.tb.Scalars(int64(line["step"].(int)), vals)
}

// writeLine appends v as one JSON line to w; a failed write (a full disk)
// fails the run rather than leaving a truncated line behind unnoticed.
func writeLine(w io.Writer, what string, v any) error {
	b, err := json.Marshal(v)
	if err == nil {
		_, err = w.Write(append(b, '\n'))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	return nil
}

func (r *run) emit(v any) error { return writeLine(r.metrics, "metrics.jsonl", v) }

func (r *run) event(v map[string]any) error {
	v["time"] = time.Now().UTC().Format(time.RFC3339)
	return writeLine(r.events, "events.jsonl", v)
}

// save writes a checkpoint of the engine's state (nothing without Out).
func (r *run) save() error {
	c := &r.c
	if c.Out == "" || r.tr.Step == r.savedStep {
		// nothing new since the checkpoint of this step (a resumed finished
		// run, or SIGINT right after a save): writing it again could only
		// lose it to a kill mid-write
		return nil
	}
	st := TrainerState{Step: r.tr.Step, AdamStep: r.tr.AdamStep, Tokens: r.res.Tokens, Seed: c.Seed,
		Sampler: r.train.State(), Fingerprint: c.fingerprint(), Teacher: r.teacherID(), Workers: r.workers()}
	if finite(r.res.Loss) {
		st.Loss = &r.res.Loss
	}
	var dir string
	var err error
	switch {
	case r.tr.dp != nil && r.tr.dp.stage > 0:
		dir, err = r.saveSharded(st)
	case r.tr.dp != nil: // replicated: rank 0 holds all of it
		if c.rank() == 0 {
			dir, err = r.ck.save(r.cfg, r.tr.Engine, st)
		}
		err = r.agree(err)
		dir = filepath.Join(r.ck.root(), stepName(st.Step))
	default:
		dir, err = r.ck.save(r.cfg, r.tr.Engine, st)
	}
	if err != nil {
		return err
	}
	r.res.Checkpoint = dir
	r.savedStep = r.tr.Step
	return r.event(map[string]any{"event": "checkpoint", "step": r.tr.Step, "checkpoint": dir})
}

// loop runs the steps: data, the optimizer step, metrics, validation and
// checkpoints at their cadence, until the last step or ctx's cancellation.
func (r *run) loop(ctx context.Context) error {
	c := &r.c
	tr := r.tr
	accum := c.GlobalBatch / c.MicroBatch
	micro := make([][][]int32, accum)
	start := time.Now()
	startTokens := r.res.Tokens
	tokPerStep := int64(c.GlobalBatch * c.SeqLen)
	if c.Progress != nil {
		c.Progress(Progress{Step: tr.Step, Steps: c.Steps})
	}
	for tr.Step < c.Steps {
		if r.stopWished(ctx.Err() != nil) {
			r.res.Interrupted = true
			break
		}
		var err error
		for i := range micro {
			if micro[i], err = r.train.NextBatch(c.MicroBatch); err != nil {
				err = fmt.Errorf("step %d: reading data: %w", tr.Step+1, err)
				break
			}
		}
		if err = r.agree(err); err != nil {
			return err
		}
		t0 := time.Now()
		var m StepMetrics
		if tr.dp != nil {
			// every rank read the whole global batch (the samplers stay
			// equal) and trains its share
			lo, hi := tr.dp.share(len(micro))
			m, err = tr.stepParallel(micro[lo:hi], len(micro), c.SkipNonFin)
		} else {
			m, err = tr.TrainStep(micro, c.SkipNonFin)
		}
		if err != nil {
			return err
		}
		r.res.Tokens += tokPerStep
		r.res.Steps = tr.Step
		r.res.Loss = m.Loss
		r.res.TokensPerS = float64(r.res.Tokens-startTokens) / time.Since(start).Seconds()
		line := r.stepLine(m, float64(tokPerStep)/time.Since(t0).Seconds())
		last := m.Step == c.Steps
		if (c.ValEvery > 0 && m.Step%c.ValEvery == 0) || (last && r.val != nil) {
			vm, err := tr.Evaluate(r.val)
			if err != nil {
				return fmt.Errorf("validation at step %d: %w", m.Step, err)
			}
			line["val_loss"] = vm.CE
			r.res.ValLoss = vm.CE
			if r.teacher != nil {
				line["val_kl"] = vm.KL
				r.res.ValKL = vm.KL
			}
		}
		if m.Step%c.LogEvery == 0 || last || line["val_loss"] != nil {
			if err := r.emit(line); err != nil {
				return err
			}
			if err := r.scalars(line); err != nil {
				return err
			}
		}
		if c.OnStep != nil {
			c.OnStep(m)
		}
		if c.Progress != nil && c.rank() == 0 {
			eta := time.Duration(float64(int64(c.Steps-m.Step)*tokPerStep)/r.res.TokensPerS) * time.Second
			c.Progress(Progress{Step: m.Step, Steps: c.Steps, Metrics: &m, TokensPerS: r.res.TokensPerS, ETA: eta})
		}
		if c.SaveEvery > 0 && m.Step%c.SaveEvery == 0 && !last {
			if err := r.save(); err != nil {
				return err
			}
		}
	}
	if err := r.save(); err != nil {
		return err
	}
	if r.res.Interrupted && c.rank() == 0 {
		if err := r.event(map[string]any{"event": "interrupted", "step": tr.Step, "checkpoint": r.res.Checkpoint}); err != nil {
			return err
		}
		cleanTemporaries(c.Out)
	}
	return nil
}

// stepLine is a step's metrics line: the loss terms the run weights, the
// learning rate, gradient norm and throughput.
func (r *run) stepLine(m StepMetrics, tokensPerS float64) map[string]any {
	l := r.c.Losses
	line := map[string]any{"step": m.Step, "lr": m.LR, "loss": m.Loss, "grad_norm": m.GradNorm,
		"tokens": r.res.Tokens, "tokens_per_s": tokensPerS}
	if l.CE != 0 {
		line["ce"] = m.CE
	}
	if l.KL != 0 {
		line["kl"] = m.KL
	}
	if l.ReverseKL != 0 {
		line["reverse_kl"] = m.RKL
	}
	if len(l.Intermediate) > 0 {
		line["is"] = m.IS
		line["is_alpha"] = m.ISAlpha
	}
	if m.Skipped {
		line["skipped"] = true
	}
	for k, v := range line {
		if f, ok := v.(float64); ok && !finite(f) {
			line[k] = nil // JSON has no NaN; a skipped step says why
		}
	}
	return line
}

// Progress is a run's position, reported to Config.Progress before the
// first step (Metrics nil) and after every step.
type Progress struct {
	Step, Steps int
	Metrics     *StepMetrics
	TokensPerS  float64       // since this process started the run
	ETA         time.Duration // at that rate
}

// ErrOutNotEmpty is Run's refusal of a used Out without Resume or
// Overwrite.
var ErrOutNotEmpty = errors.New("resume its run (Resume) or start over (Overwrite)")

// prepareOut makes Out ready for this run: not the student's or the
// teacher's own directory, empty unless resumed or overwritten, writable,
// and rid of what a killed run left half-written.
func (c *Config) prepareOut() error {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		if r, err := filepath.EvalSymlinks(a); err == nil {
			return r
		}
		return a
	}
	out := abs(c.Out)
	for _, d := range []struct{ name, dir string }{{"student's", c.StudentDir}, {"teacher's", c.TeacherDir}} {
		if d.dir != "" && abs(d.dir) == out {
			return fmt.Errorf("Out %s is the %s checkpoint directory: give the run a directory of its own", c.Out, d.name)
		}
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	cleanTemporaries(c.Out)
	ents, err := os.ReadDir(c.Out)
	if err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	if len(ents) > 0 && !c.Resume {
		if !c.Overwrite {
			return fmt.Errorf("output directory %s is not empty (%s…): %w", c.Out, ents[0].Name(), ErrOutNotEmpty)
		}
		for _, n := range []string{"metrics.jsonl", "events.jsonl", "checkpoints", "tensorboard"} {
			if err := os.RemoveAll(filepath.Join(c.Out, n)); err != nil {
				return fmt.Errorf("output directory: %w", err)
			}
		}
	}
	return checkWritable(c.Out)
}

// fingerprintDiff names the settings that differ between two fingerprints
// (space-separated key=value fields).
func fingerprintDiff(was, now string) string {
	fields := func(s string) map[string]string {
		m := map[string]string{}
		for _, f := range strings.Fields(s) {
			k, v, _ := strings.Cut(f, "=")
			m[k] = v
		}
		return m
	}
	a, b := fields(was), fields(now)
	var diffs []string
	for _, k := range strings.Fields(now) {
		k, _, _ = strings.Cut(k, "=")
		if a[k] != b[k] {
			diffs = append(diffs, fmt.Sprintf("%s %s in the checkpoint, %s now", k, a[k], b[k]))
		}
	}
	if len(diffs) == 0 {
		return fmt.Sprintf("checkpoint: %s; now: %s", was, now)
	}
	return strings.Join(diffs, "; ")
}

// teacherID identifies the teacher for resume checks: a hash of its
// config, its tensor names and shapes and, where the weights can be read
// in ranges, the first values of every tensor ("" without a teacher).
func (r *run) teacherID() string {
	t := r.teacher
	if t == nil {
		return ""
	}
	if r.tid != "" {
		return r.tid
	}
	h := sha256.New()
	if b, err := t.Cfg.MarshalJSON(); err == nil {
		h.Write(b)
	}
	src := t.Source()
	rr, ranged := src.(model.RangeReader)
	buf := make([]float32, 64)
	for _, n := range src.Names() {
		info, _ := src.Info(n)
		fmt.Fprintf(h, "%s%v;", n, info.Shape)
		if k := min(len(buf), info.NumElements()); ranged && rr.ReadF32Range(n, 0, buf[:k]) == nil {
			for _, v := range buf[:k] {
				binary.Write(h, binary.LittleEndian, v)
			}
		}
	}
	r.tid = hex.EncodeToString(h.Sum(nil))[:16]
	return r.tid
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// studentSource picks the student's config and initial weights: the resume
// checkpoint, the given weights, a checkpoint directory, or random.
func (c *Config) studentSource(resumeDir string) (*model.Config, model.TensorSource, func() error, error) {
	if resumeDir != "" {
		ck, err := model.OpenCheckpoint(resumeDir)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("resume: %w", err)
		}
		return ck.Config(), ck, ck.Close, nil
	}
	if c.StudentWeights != nil {
		if c.StudentConfig == nil {
			return nil, nil, nil, errors.New("student weights given without their config")
		}
		return c.StudentConfig, c.StudentWeights, nil, nil
	}
	cfg := c.StudentConfig
	if c.StudentDir != "" && (cfg == nil || !c.RandomInit) {
		if c.RandomInit {
			lc, err := model.LoadConfig(c.StudentDir)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("student: %w", err)
			}
			cfg = lc
		} else {
			ck, err := model.OpenCheckpoint(c.StudentDir)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("student: %w", err)
			}
			return ck.Config(), ck, ck.Close, nil
		}
	}
	if cfg == nil {
		return nil, nil, nil, errors.New("no student: give a checkpoint directory or an architecture")
	}
	if !c.RandomInit {
		return nil, nil, nil, errors.New("student architecture given without weights: set random initialisation")
	}
	return cfg, model.NewRandomSource(cfg, model.F32, c.Seed), nil, nil
}

// validationBatches reads the fixed validation micro-batches (the same at
// every evaluation), or nil without validation data.
// splits resolves Data's prefixes to the datasets trained on, and the
// prepared corpora's validation splits (all or nothing: a blend validates on
// every part or on none by default).
func (c *Config) splits() (train, val []string, err error) {
	for _, p := range c.Data {
		t := data.Split(p, "train")
		if t == "" {
			return nil, nil, fmt.Errorf("training data %s: no dataset %s.idx, nor a prepared corpus %s_train.idx", p, p, p)
		}
		train = append(train, t)
		if v := data.Split(p, "val"); v != "" && v != t {
			val = append(val, v)
		}
	}
	if len(val) != len(train) {
		val = nil
	}
	return train, val, nil
}

func (c *Config) validationBatches() ([][][]int32, error) {
	vs := c.ValSampler
	if vs == nil {
		if len(c.Val) == 0 {
			return nil, nil
		}
		var val []string
		for _, p := range c.Val {
			v := data.Split(p, "val")
			if v == "" {
				return nil, fmt.Errorf("validation data %s: no dataset %s.idx, nor a prepared corpus %s_val.idx", p, p, p)
			}
			val = append(val, v)
		}
		s, closeVal, err := data.OpenBlend(val, nil, data.SamplerOptions{SeqLen: c.SeqLen, Seed: c.Seed + 1000, NoShuffle: true})
		if err != nil {
			return nil, fmt.Errorf("validation data: %w", err)
		}
		defer closeVal()
		vs = s
	}
	out := make([][][]int32, c.ValBatches)
	for i := range out {
		b, err := vs.NextBatch(c.MicroBatch)
		if err != nil {
			return nil, fmt.Errorf("validation data: %w", err)
		}
		out[i] = b
	}
	return out, nil
}
