package distill

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// Engine is what a device supplies to the training core: the student's
// forward and backward passes with the losses, the AdamW update, and the
// training state (weights, gradients, moments) it owns. The core (Trainer,
// Run) decides everything else — the loss mix, clipping, the non-finite
// policy, the schedule, metrics, checkpoints — so that every device trains
// the same way. State goes in and out one tensor at a time: no engine needs
// a whole host copy of the model.
type Engine interface {
	// Micro runs micro-batch i of the n of a step (tokens [Batch][Seq+1]:
	// inputs the first Seq, targets the last Seq): the teacher when a loss
	// needs it, the student's forward pass, the losses of
	// Losses.TrainTerms (and the intermediate-state loss) and the backward
	// pass. Gradients are scaled by 1/(n·Batch·Seq); micro-batch 0
	// overwrites the step's gradient, the others add to it.
	Micro(tokens [][]int32, i, n int) (Parts, error)
	// GradSumSquares is the sum of squares of the step's whole gradient
	// (every tensor, the intermediate-state projection included), in
	// float64.
	GradSumSquares() (float64, error)
	// Update multiplies the gradient by clip (1: none) and applies AdamW at
	// learning rate lr as update number step (1-based), with the scalars of
	// Optim.Scalars for each tensor.
	Update(lr float64, clip float32, step int) error
	// Eval is the forward pass of one validation micro-batch: the losses
	// of Losses.EvalTerms, without gradients or update.
	Eval(tokens [][]int32) (Parts, error)

	// Tensors lists the trained tensors in the engine's arena order: the
	// student's (model.Arch.Tensors), then the intermediate-state
	// projection (ISProjName) when there is one.
	Tensors() []model.TensorInfo
	// ReadState copies tensor name's weights and AdamW moments into w, m1
	// and m2 (a nil slice is skipped).
	ReadState(name string, w, m1, m2 []float32) error
	// WriteState sets them (a nil slice leaves that part as it is).
	WriteState(name string, w, m1, m2 []float32) error
	// Close releases what the engine holds.
	Close() error
}

// EngineConfig is what an engine is built from.
type EngineConfig struct {
	Arch *model.Arch // the student's architecture (weights checked trainable)
	// Weights supplies the initial value of every tensor of Tensors by
	// name (NewEngine adds the intermediate-state projection's, ISProjInit,
	// when Weights lacks it).
	Weights    model.TensorSource
	Teacher    *model.Model // frozen; nil when no loss needs it
	Batch, Seq int          // micro-batch shape
	Losses     Losses       // validated; TeacherHidden set with Intermediate
	Optim      Optim

	// CPU only: a cache of the teacher's top-k logits (Losses.TopK).
	TopKCache *TopKCache
	// CUDA only: full-f32 products instead of TF32; bf16 products with f32
	// masters (mixed precision).
	NoTF32, BF16 bool
	// CUDA only: keep only each layer's input and recompute the layer in
	// the backward pass (the same gradients, less memory).
	Recompute bool
	// LogitChunk > 0 computes the logits, the losses and their gradients
	// over chunks of that many tokens, so that the full [tokens, vocab]
	// logits of the student and of the teacher never exist at once (0:
	// the whole micro-batch; the CPU engine's default, byte for byte).
	LogitChunk int
	// Zero is the ZeRO stage the core will shard the engine at
	// (Parallel.Shard; 0: none), so that a device engine never allocates
	// the whole buffers sharding would free: the moments (1 and 2) and the
	// gradient arena (2, reduced bucket by bucket through GradBuckets).
	Zero int
	// CUDA only, with BF16 and Zero 0: keep the f32 master weights and
	// AdamW moments in host memory and run AdamW on the CPU (the device
	// holds bf16 weights and gradients only: 12 B per parameter less).
	Offload bool
}

// ParsePrecision reports whether precision p ("f32", the default, or
// "bf16") is bf16.
func ParsePrecision(p string) (bf16 bool, err error) {
	switch p {
	case "", "f32":
		return false, nil
	case "bf16":
		return true, nil
	}
	return false, fmt.Errorf("precision %q: want f32 or bf16", p)
}

// EngineFactory builds an engine for a device.
type EngineFactory func(EngineConfig) (Engine, error)

var (
	enginesMu sync.Mutex
	engines   = map[device.Kind]EngineFactory{device.CPU: newCPUEngine}
)

// RegisterEngine makes f the engine of device k. The CUDA engine (package
// gpu) registers itself when a binary built with the CUDA backend links it.
func RegisterEngine(k device.Kind, f EngineFactory) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	engines[k] = f
}

// NewEngine builds the engine of device k.
func NewEngine(k device.Kind, c EngineConfig) (Engine, error) {
	if err := k.Check(); err != nil {
		return nil, err
	}
	enginesMu.Lock()
	f := engines[k]
	enginesMu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("device %s: no training engine linked into this program (import github.com/minitron-dev/minitron/gpu)", k)
	}
	c.Weights = withISProj(c.Weights, c.Losses, c.Arch.Cfg.HiddenSize)
	return f(c)
}

// NewTrainer builds device k's engine and a trainer over it that starts at
// step 0.
func NewTrainer(k device.Kind, c EngineConfig, sched Schedule) (*Trainer, error) {
	eng, err := NewEngine(k, c)
	if err != nil {
		return nil, err
	}
	return &Trainer{Engine: eng, Optim: c.Optim, Sched: sched}, nil
}

// StepMetrics are the results of one optimizer step (means over its tokens).
type StepMetrics struct {
	Step     int     `json:"step"`
	LR       float64 `json:"lr"`
	Loss     float64 `json:"loss"`
	CE       float64 `json:"ce,omitempty"`
	KL       float64 `json:"kl,omitempty"`
	RKL      float64 `json:"reverse_kl,omitempty"`
	IS       float64 `json:"is,omitempty"`       // intermediate-state cosine loss
	ISAlpha  float64 `json:"is_alpha,omitempty"` // its dynamic weight
	GradNorm float64 `json:"grad_norm"`
	Skipped  bool    `json:"skipped,omitempty"`
}

// add accumulates one of n micro-batches' parts as their mean.
func (m *StepMetrics) add(p Parts, n int) {
	f := float64(n)
	m.Loss += float64(p.Loss) / f
	m.CE += p.CE / f
	m.KL += p.KL / f
	m.RKL += p.RKL / f
	m.IS += p.IS / f
	m.ISAlpha += p.ISAlpha / f
}

// NonFiniteError is a step whose loss or gradient norm is not finite. It is
// detected before the update: weights and moments are unchanged.
type NonFiniteError struct {
	Step  int
	What  string // "loss" or "gradient norm"
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("step %d: %s is %v (Config.SkipNonFin skips such steps)", e.Step, e.What, e.Value)
}

// Trainer runs optimizer steps on an engine: per step, the micro-batches,
// the non-finite policy, clipping and the AdamW update at the scheduled
// learning rate. It is the one step of every device.
type Trainer struct {
	Engine   Engine
	Optim    Optim
	Sched    Schedule
	Step     int // optimizer steps done (skipped ones included)
	AdamStep int // updates applied (AdamW's bias-correction count)

	dp *dataParallel // nil in a world of one
}

// nonFinite applies the non-finite policy to step m: a NonFiniteError, or
// with skip the step counts, marked Skipped, with no update.
func (t *Trainer) nonFinite(m StepMetrics, skip bool, what string, v float64) (StepMetrics, error) {
	if !skip {
		return m, &NonFiniteError{Step: m.Step, What: what, Value: v}
	}
	m.Skipped = true
	t.Step++
	return m, nil
}

// TrainStep runs one optimizer step over micro (its micro-batches). A
// non-finite loss or gradient norm is a *NonFiniteError unless
// skipNonFinite is set; then the step counts, with Skipped and no update.
func (t *Trainer) TrainStep(micro [][][]int32, skipNonFinite bool) (StepMetrics, error) {
	m := StepMetrics{Step: t.Step + 1, LR: t.Sched.At(t.Step)}
	n := len(micro)
	if n == 0 {
		return m, fmt.Errorf("step %d: no micro-batches", m.Step)
	}
	for i, mb := range micro {
		p, err := t.Engine.Micro(mb, i, n)
		if err != nil {
			return m, fmt.Errorf("step %d: %w", m.Step, err)
		}
		m.add(p, n)
		if !finite(float64(p.Loss)) {
			return t.nonFinite(m, skipNonFinite, "loss", float64(p.Loss))
		}
	}
	ss, err := t.Engine.GradSumSquares()
	if err != nil {
		return m, fmt.Errorf("step %d: gradient norm: %w", m.Step, err)
	}
	m.GradNorm = math.Sqrt(ss)
	if !finite(m.GradNorm) {
		return t.nonFinite(m, skipNonFinite, "gradient norm", m.GradNorm)
	}
	if err := t.Engine.Update(m.LR, t.Optim.ClipScale(m.GradNorm), t.AdamStep+1); err != nil {
		return m, fmt.Errorf("step %d: update: %w", m.Step, err)
	}
	t.AdamStep++
	t.Step++
	return m, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Evaluate returns the mean metrics of the forward pass over batches (no
// update): the LM loss (CE) always, and the KLs when there is a teacher.
// Data parallel, each rank evaluates its contiguous share of the batches
// and the means are summed over the ranks.
func (t *Trainer) Evaluate(batches [][][]int32) (StepMetrics, error) {
	var m StepMetrics
	if len(batches) == 0 {
		return m, fmt.Errorf("no validation batches")
	}
	lo, hi := 0, len(batches)
	if t.dp != nil {
		lo, hi = t.dp.share(len(batches))
	}
	for _, mb := range batches[lo:hi] {
		p, err := t.Engine.Eval(mb)
		if err != nil {
			return m, err
		}
		p.ISAlpha = 0 // α is a training weight, not a validation metric
		m.add(p, len(batches))
	}
	if t.dp != nil {
		v := []float64{m.Loss, m.CE, m.KL, m.RKL, m.IS}
		if err := t.dp.c.AllReduceF64(v); err != nil {
			return m, err
		}
		m.Loss, m.CE, m.KL, m.RKL, m.IS = v[0], v[1], v[2], v[3], v[4]
	}
	return m, nil
}

// arenaOffsets are the tensors' offsets in one arena of their total size,
// in the given order.
func arenaOffsets(ts []model.TensorInfo) (offs []int, total int) {
	offs = make([]int, len(ts))
	for i, t := range ts {
		offs[i] = total
		total += t.NumElements()
	}
	return offs, total
}

// withISProj is the student's weights plus the intermediate-state
// projection's initial value (ISProjInit) when the losses have one and the
// weights do not.
func withISProj(src model.TensorSource, l Losses, hs int) model.TensorSource {
	if len(l.Intermediate) == 0 {
		return src
	}
	if _, ok := src.Info(ISProjName); ok {
		return src
	}
	return &overlay{TensorSource: src, name: ISProjName, shape: []int{l.TeacherHidden, hs},
		data: ISProjInit(l.TeacherHidden, hs)}
}

// overlay adds one f32 tensor to a source.
type overlay struct {
	model.TensorSource
	name  string
	shape []int
	data  []float32
}

func (o *overlay) Info(name string) (model.TensorInfo, bool) {
	if name == o.name {
		return model.TensorInfo{Name: name, DType: model.F32, Shape: o.shape}, true
	}
	return o.TensorSource.Info(name)
}

func (o *overlay) Names() []string {
	n := append(o.TensorSource.Names(), o.name)
	sort.Strings(n)
	return n
}

func (o *overlay) ReadF32(name string, dst []float32) error {
	if name != o.name {
		return o.TensorSource.ReadF32(name, dst)
	}
	if len(dst) != len(o.data) {
		return fmt.Errorf("tensor %q has %d elements, dst %d", name, len(o.data), len(dst))
	}
	copy(dst, o.data)
	return nil
}

// TrainTensors is the order of the tensors an engine trains for arch and
// losses (Engine.Tensors): the student's, then the intermediate-state
// projection.
func TrainTensors(a *model.Arch, l Losses) []model.TensorInfo {
	ts := append([]model.TensorInfo(nil), a.Tensors...)
	if len(l.Intermediate) > 0 {
		ts = append(ts, model.TensorInfo{Name: ISProjName, DType: model.F32, Shape: []int{l.TeacherHidden, a.Cfg.HiddenSize}})
	}
	return ts
}

// SplitMicroBatch checks a micro-batch's layout — batch rows of seq+1 token
// ids in [0, vocab) — and writes each row's first seq ids (the inputs) and
// last seq (the targets) into ids and targets, row after row. Every engine
// reads its micro-batches through it.
func SplitMicroBatch[T int | int32](tokens [][]int32, batch, seq, vocab int, ids, targets []T) error {
	if len(tokens) != batch {
		return fmt.Errorf("micro-batch has %d sequences, want %d", len(tokens), batch)
	}
	for b, row := range tokens {
		if len(row) != seq+1 {
			return fmt.Errorf("sample %d has %d tokens, want seq_len+1 = %d", b, len(row), seq+1)
		}
		for t := 0; t < seq; t++ {
			id, tg := row[t], row[t+1]
			if id < 0 || int(id) >= vocab || tg < 0 || int(tg) >= vocab {
				return fmt.Errorf("sample %d: token id outside the student vocabulary [0,%d)", b, vocab)
			}
			ids[b*seq+t], targets[b*seq+t] = T(id), T(tg)
		}
	}
	return nil
}
