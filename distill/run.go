package distill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/internal/progress"
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

	// Data: Megatron indexed dataset prefixes (blended with equal weights)
	// or a ready sampler; validation likewise (optional).
	Data       []string
	Train      data.Sampler
	Val        []string
	ValSampler data.Sampler
	ValBatches int // micro-batches per validation (default 8)

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

	Out        string // output directory (checkpoints/, metrics.jsonl); "" writes no files (e.g. search candidates)
	SaveEvery  int    // steps between checkpoints (0: only at the end)
	KeepLast   int    // checkpoints kept (0: all)
	ValEvery   int    // steps between validations (0: only at the end)
	LogEvery   int    // steps between metric lines (default 1)
	Resume     bool   // continue from Out's latest checkpoint
	SkipNonFin bool   // skip steps with a non-finite loss instead of failing
	Workers    int    // kernel goroutines (0: all cores)
	TopKCache  string // directory caching the teacher's top-k logits
	// Device runs the optimizer steps on "cpu" (the default) or "cuda"
	// (gpu, GPU 0; needs a binary built with -tags minitron_cuda and
	// supports every loss but the intermediate one, without a top-k cache).
	Device string
	// NoTF32 keeps the device's f32 matrix products in full f32 (cuBLAS
	// default math) instead of TF32 tensor-op math: slower, closer to the CPU.
	NoTF32 bool
	// BF16 (Device "cuda" only) runs the linear layers' products in bf16
	// with f32 accumulation and f32 master weights (mixed precision).
	BF16 bool

	// Metrics receives JSONL metric lines in addition to Out/metrics.jsonl.
	Metrics io.Writer
	// Progress draws a bar on stderr (only when it is a terminal).
	Progress bool
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
	if c.Losses.CE == 0 && c.Losses.KL == 0 && c.Losses.ReverseKL == 0 {
		if c.TeacherDir != "" || c.Teacher != nil {
			c.Losses.KL = 1
		} else {
			c.Losses.CE = 1
		}
	}
	if c.SeqLen <= 0 || c.MicroBatch <= 0 {
		return fmt.Errorf("seq-len (%d) and micro-batch (%d) must be positive", c.SeqLen, c.MicroBatch)
	}
	if c.GlobalBatch == 0 {
		c.GlobalBatch = c.MicroBatch
	}
	if c.GlobalBatch%c.MicroBatch != 0 {
		return fmt.Errorf("global batch %d is not a multiple of the micro-batch %d", c.GlobalBatch, c.MicroBatch)
	}
	if c.Steps > 0 && c.Tokens > 0 {
		return fmt.Errorf("give the number of steps or of tokens, not both (steps %d, tokens %d)", c.Steps, c.Tokens)
	}
	if c.Steps <= 0 && c.Tokens > 0 {
		per := int64(c.GlobalBatch * c.SeqLen)
		c.Steps = int((c.Tokens + per - 1) / per)
	}
	if c.Steps <= 0 {
		return fmt.Errorf("set the number of steps (--steps) or tokens (--tokens)")
	}
	if c.Warmup < 0 || c.Warmup > c.Steps {
		return fmt.Errorf("warmup %d must be between 0 and the %d steps", c.Warmup, c.Steps)
	}
	if c.Out == "" && (c.Resume || c.SaveEvery > 0) {
		return fmt.Errorf("no output directory (--out) for checkpoints")
	}
	return nil
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
func Run(ctx context.Context, c Config) (res Result, err error) {
	res.ValLoss = math.NaN()
	if err := c.defaults(); err != nil {
		return res, err
	}
	if err := c.Losses.validate(); err != nil {
		return res, err
	}
	if c.Device == "cuda" {
		if err := checkCUDA(&c); err != nil {
			return res, err
		}
	} else if c.Device != "" && c.Device != "cpu" {
		return res, fmt.Errorf("--device %q: want cpu or cuda", c.Device)
	} else if c.BF16 {
		return res, errors.New("--bf16 needs --device cuda (the CPU path trains in f32)")
	}
	if c.Out != "" {
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			return res, fmt.Errorf("output directory: %w", err)
		}
		if err := checkWritable(c.Out); err != nil {
			return res, err
		}
	}
	if c.Workers > 0 {
		defer kernels.SetWorkers(kernels.SetWorkers(c.Workers))
	}
	kernels.SetBLASThreads(1)

	ck := &checkpointer{dir: c.Out, keep: c.KeepLast}
	if st, err := os.Stat(c.StudentDir); err == nil && st.IsDir() {
		ck.tokenizerDir = c.StudentDir // carry the tokenizer into every checkpoint
	}
	var resumeDir string
	var rstate TrainerState
	if c.Resume {
		if resumeDir, err = ck.latest(); err != nil {
			return res, err
		}
		if resumeDir != "" {
			if rstate, err = readTrainerState(resumeDir); err != nil {
				return res, err
			}
			if rstate.Fingerprint != c.fingerprint() {
				return res, fmt.Errorf("cannot resume from %s: settings differ (checkpoint: %s; now: %s)", resumeDir, rstate.Fingerprint, c.fingerprint())
			}
		}
	}

	// Teacher.
	teacher := c.Teacher
	if teacher == nil && c.TeacherDir != "" {
		// On the device the teacher's weights go up once, tensor by tensor:
		// keeping an f32 copy on the host too would double what a large
		// teacher costs there.
		opt := model.Options{}
		if c.Device == "cuda" {
			opt.Weights = model.WeightsStreaming
		}
		if teacher, err = model.Load(c.TeacherDir, opt); err != nil {
			return res, fmt.Errorf("teacher: %w", err)
		}
		defer teacher.Close()
	}
	if teacher == nil && c.Losses.NeedsTeacher() {
		return res, fmt.Errorf("the losses (kl %g, reverse_kl %g) need a teacher (--teacher)", c.Losses.KL, c.Losses.ReverseKL)
	}

	// Student.
	cfg, src, closeSrc, err := c.studentSource(resumeDir)
	if err != nil {
		return res, err
	}
	if teacher != nil && teacher.Cfg.VocabSize != cfg.VocabSize {
		if closeSrc != nil {
			closeSrc()
		}
		return res, fmt.Errorf("teacher vocabulary has %d tokens, student %d: distillation needs the same tokenizer", teacher.Cfg.VocabSize, cfg.VocabSize)
	}
	if len(c.Losses.Intermediate) > 0 {
		var tcfg *model.Config
		if teacher != nil {
			tcfg = teacher.Cfg
			c.Losses.TeacherHidden = tcfg.HiddenSize
		}
		if err := checkPairs(c.Losses.Intermediate, cfg, tcfg); err != nil {
			if closeSrc != nil {
				closeSrc()
			}
			return res, err
		}
	}
	// A device run steps on the GPU: its host Student is only the mirror
	// checkpoints are written from, without a training graph.
	s, err := newStudent(cfg, src, c.MicroBatch, c.SeqLen, c.Losses, c.Device != "cuda")
	if closeSrc != nil {
		closeSrc()
	}
	if err != nil {
		return res, err
	}
	defer s.Close()

	opt := NewAdamW(s.NumParams(), c.WeightDecay)
	opt.DecayAll = c.DecayAll
	accum := c.GlobalBatch / c.MicroBatch
	tr, err := NewTrainer(s, opt, Schedule{LR: c.LR, MinLR: c.MinLR, Warmup: c.Warmup, Steps: c.Steps}, accum, c.Clip, teacher)
	if err != nil {
		return res, err
	}
	if c.TopKCache != "" && c.Losses.TopK > 0 && teacher != nil {
		if tr.TopKCache, err = OpenTopKCache(c.TopKCache, teacher, c.Losses.TopK, c.SeqLen, c.MicroBatch); err != nil {
			return res, err
		}
	}

	// Data.
	train := c.Train
	if train == nil {
		if len(c.Data) == 0 {
			return res, fmt.Errorf("no training data (--data PREFIX)")
		}
		var closeData func() error
		train, closeData, err = data.OpenBlend(c.Data, nil, data.SamplerOptions{SeqLen: c.SeqLen, Seed: c.Seed})
		if err != nil {
			return res, fmt.Errorf("training data: %w", err)
		}
		defer closeData()
	}
	if train.SeqLen() != c.SeqLen {
		return res, fmt.Errorf("training sampler serves sequence length %d, run wants %d", train.SeqLen(), c.SeqLen)
	}
	valBatches, err := c.validationBatches()
	if err != nil {
		return res, err
	}

	if resumeDir != "" {
		if err := readOptimizer(filepath.Join(resumeDir, "optimizer.bin"), opt, s.auxData()); err != nil {
			return res, err
		}
		if err := train.Restore(rstate.Sampler); err != nil {
			return res, fmt.Errorf("resume %s: data position: %w", resumeDir, err)
		}
		tr.Step = rstate.Step
		res.Tokens = rstate.Tokens
		res.Checkpoint = resumeDir
	}
	eng, err := newEngine(&c, tr)
	if err != nil {
		return res, err
	}
	defer eng.Close()

	var ws []io.Writer
	if c.Out != "" {
		if resumeDir != "" {
			if err := truncateMetrics(filepath.Join(c.Out, "metrics.jsonl"), rstate.Step); err != nil {
				return res, fmt.Errorf("metrics: %w", err)
			}
		}
		mf, err := os.OpenFile(filepath.Join(c.Out, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return res, fmt.Errorf("metrics: %w", err)
		}
		defer mf.Close()
		ws = append(ws, mf)
	}
	if c.Metrics != nil {
		ws = append(ws, c.Metrics)
	}
	mw := io.MultiWriter(ws...)
	emit := func(v any) {
		b, _ := json.Marshal(v)
		mw.Write(append(b, '\n'))
	}

	save := func() error {
		if c.Out == "" {
			return nil
		}
		if err := eng.Sync(); err != nil {
			return err
		}
		st := TrainerState{Step: eng.StepsDone(), AdamStep: opt.Step, Tokens: res.Tokens, Seed: c.Seed,
			Sampler: train.State(), Fingerprint: c.fingerprint()}
		dir, err := ck.save(s, opt, st)
		if err != nil {
			return err
		}
		res.Checkpoint = dir
		return nil
	}

	var bar *progress.Bar
	if c.Progress {
		bar = progress.New(int64(c.Steps), "train")
		bar.Add(eng.StepsDone())
		defer bar.Finish()
	}
	micro := make([][][]int32, accum)
	start := time.Now()
	startTokens := res.Tokens
	tokPerStep := int64(c.GlobalBatch * c.SeqLen)
	for eng.StepsDone() < c.Steps {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		for i := range micro {
			if micro[i], err = train.NextBatch(c.MicroBatch); err != nil {
				return res, fmt.Errorf("step %d: reading data: %w", eng.StepsDone()+1, err)
			}
		}
		t0 := time.Now()
		m, err := eng.TrainStep(micro, c.SkipNonFin)
		if err != nil {
			return res, err
		}
		res.Tokens += tokPerStep
		res.Steps = eng.StepsDone()
		res.Loss = m.Loss
		el := time.Since(start).Seconds()
		res.TokensPerS = float64(res.Tokens-startTokens) / el
		line := map[string]any{"step": m.Step, "lr": m.LR, "loss": m.Loss, "grad_norm": m.GradNorm,
			"tokens": res.Tokens, "tokens_per_s": float64(tokPerStep) / time.Since(t0).Seconds()}
		if s.st.losses.CE != 0 {
			line["ce"] = m.CE
		}
		if s.st.losses.KL != 0 {
			line["kl"] = m.KL
		}
		if s.st.losses.ReverseKL != 0 {
			line["reverse_kl"] = m.RKL
		}
		if len(s.st.losses.Intermediate) > 0 {
			line["is"] = m.IS
			line["is_alpha"] = m.ISAlpha
		}
		if m.Skipped {
			line["skipped"] = true
		}
		last := m.Step == c.Steps
		if (c.ValEvery > 0 && m.Step%c.ValEvery == 0) || (last && valBatches != nil) {
			vm, err := eng.Evaluate(valBatches)
			if err != nil {
				return res, fmt.Errorf("validation at step %d: %w", m.Step, err)
			}
			line["val_loss"] = vm.CE
			res.ValLoss = vm.CE
			if teacher != nil {
				line["val_kl"] = vm.KL
				res.ValKL = vm.KL
			}
		}
		if m.Step%c.LogEvery == 0 || last || line["val_loss"] != nil {
			emit(line)
		}
		if c.OnStep != nil {
			c.OnStep(m)
		}
		if bar != nil {
			bar.Add(1)
			desc := fmt.Sprintf("step %d loss %.4f", m.Step, m.Loss)
			if s.st.losses.KL != 0 {
				desc += fmt.Sprintf(" kl %.4f", m.KL)
			}
			rate := res.TokensPerS
			eta := time.Duration(float64(int64(c.Steps-m.Step)*tokPerStep)/rate) * time.Second
			bar.Describe(fmt.Sprintf("%s %.0f tok/s eta %s", desc, rate, eta.Round(time.Second)))
		}
		if c.SaveEvery > 0 && m.Step%c.SaveEvery == 0 && !last {
			if err := save(); err != nil {
				return res, err
			}
		}
	}
	if err := save(); err != nil {
		return res, err
	}
	if res.Interrupted {
		emit(map[string]any{"step": eng.StepsDone(), "interrupted": true, "checkpoint": res.Checkpoint})
	}
	return res, nil
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
func (c *Config) validationBatches() ([][][]int32, error) {
	vs := c.ValSampler
	if vs == nil {
		if len(c.Val) == 0 {
			return nil, nil
		}
		s, closeVal, err := data.OpenBlend(c.Val, nil, data.SamplerOptions{SeqLen: c.SeqLen, Seed: c.Seed + 1000, NoShuffle: true})
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
