//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Engine is the CUDA training engine (distill.Engine): a student Model
// with its gradients and AdamW moments on the device, and for the losses
// that read them a teacher Model. Weights, gradients and moments never
// leave the device but one tensor at a time through ReadState and
// WriteState; the training core (distill.Trainer) runs the step.
type Engine struct {
	S       *Model
	Teacher *Model
	Losses  distill.Losses
	Optim   distill.Optim

	grad, mom1, mom2 cuda.Buf    // arenas in the parameter layout
	acc              cuda.Buf    // gradient sum over a step's micro-batches (more than one)
	gl               *gradLayout // bf16 gradients (bf16grad.go); nil: grad and acc in the arena's layout
	gradB, accB      cuda.BF16   // the bf16 gradients and their micro-batch sum (gl)
	stepMicro        int         // micro-batches of the step in progress
	g, dh, da, du    cuda.Buf    // residual-stream gradient and scratch
	datt, dqkv, mix  cuda.Buf
	qkScratch        cuda.Buf // the q/k norm's backward (qwen3)
	rowLoss          cuda.Buf
	topIdx, topVal   cuda.Buf // the teacher's top-k (Losses.TopK)
	hostT, hostVal   []float32
	hostIdx          []int32
	hostLoss         []float32
	is               *isLoss // Losses.Intermediate
	owned            []cuda.Buf
	// bf16 copies of the gradients that feed products (bf16 mode)
	Gb, gb, dub, dqkvb cuda.BF16
	ownedB             []cuda.BF16
	closers            []func() // what NewEngine opened (device, models)
	shard              *shard   // data parallel under ZeRO (parallel.go); nil otherwise
	bk                 *buckets // ZeRO 2's gradient buckets (buckets.go); nil otherwise
	// src is the initial weights, read again by Shard for the f32 master
	// weights of its range when the student keeps its matrices only in
	// bf16 (masters.go)
	src   model.TensorSource
	stage cuda.Buf // GatherWeights' f32 staging chunk
	off   *offload // the masters and moments in host memory (offload.go); nil otherwise
}

func init() { distill.RegisterEngine(device.CUDA, NewEngine) }

// NewEngine opens GPU 0 and builds the engine of c there: the student from
// c.Weights, the teacher from c.Teacher's source (its weights go up once,
// tensor by tensor; with c.BF16 its matrices are stored in bf16 alone, as
// it only infers).
func NewEngine(c distill.EngineConfig) (_ distill.Engine, err error) {
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	d, err := cuda.Open(0)
	if err != nil {
		return nil, fmt.Errorf("device cuda: %w", err)
	}
	closers = append(closers, func() { d.Close() })
	if c.NoTF32 {
		if err = d.SetTF32(false); err != nil {
			return nil, fmt.Errorf("device cuda: %w", err)
		}
	}
	// bf16 under ZeRO: the matrices only in bf16 here, their f32 master
	// weights sharded over the ranks (Shard reads this rank's from c.Weights)
	// (with c.Offload, the f32 masters are in host memory: offload.go)
	if c.Offload && (!c.BF16 || c.Zero != 0) {
		return nil, fmt.Errorf("device cuda: optimizer offload needs BF16 and ZeRO 0 (the host keeps every master weight and moment)")
	}
	masters := c.BF16 && (c.Zero >= 1 || c.Offload)
	// bf16 otherwise: f32 master weights with a bf16 shadow (Options.BF16,
	// so the activations are allocated in their bf16 layout at once)
	s, err := NewModelOpts(d, c.Arch.Cfg, c.Weights, Options{Batch: c.Batch, Seq: c.Seq, Train: true, Recompute: c.Recompute,
		LogitChunk: c.LogitChunk, WeightsBF16: masters, BF16: c.BF16 && !masters})
	if err != nil {
		return nil, fmt.Errorf("device cuda: student: %w", err)
	}
	closers = append(closers, s.Free)
	var t *Model
	if c.Teacher != nil {
		if t, err = NewModelOpts(d, c.Teacher.Cfg, c.Teacher.Source(), Options{Batch: c.Batch, Seq: c.Seq, WeightsBF16: c.BF16, LogitChunk: c.LogitChunk}); err != nil {
			return nil, fmt.Errorf("device cuda: teacher: %w", err)
		}
		closers = append(closers, t.Free)
	}
	e, err := NewEngineFor(s, t, c)
	if err != nil {
		return nil, fmt.Errorf("device cuda: %w", err)
	}
	e.closers = closers
	return e, nil
}

// NewEngineFor builds an engine over a student Model (built with train)
// and a teacher (nil when no loss needs it) that the caller owns; c gives
// the losses and the optimizer, and c.Weights the intermediate-state
// projection's initial value when there is one. For bf16 products call
// s.EnableBF16 (and the teacher's) first.
func NewEngineFor(s, teacher *Model, c distill.EngineConfig) (*Engine, error) {
	losses := c.Losses
	if !s.train {
		return nil, fmt.Errorf("gpu: the student model was built without train")
	}
	if err := losses.Validate(); err != nil {
		return nil, err
	}
	if s.recompute && len(losses.Intermediate) > 0 {
		return nil, fmt.Errorf("gpu: activation recomputation does not keep the hidden states the intermediate-state loss reads; train without one of them")
	}
	if losses.NeedsTeacher() {
		if teacher == nil {
			return nil, fmt.Errorf("gpu: the KL and intermediate-state losses need a teacher")
		}
		if teacher.LogitChunk() != s.LogitChunk() {
			return nil, fmt.Errorf("gpu: teacher logit chunk %d differs from the student's %d", teacher.LogitChunk(), s.LogitChunk())
		}
		if teacher.Cfg.VocabSize != s.Cfg.VocabSize || teacher.Batch != s.Batch || teacher.Seq != s.Seq {
			return nil, fmt.Errorf("gpu: teacher (vocab %d, %d×%d) does not match the student (vocab %d, %d×%d)",
				teacher.Cfg.VocabSize, teacher.Batch, teacher.Seq, s.Cfg.VocabSize, s.Batch, s.Seq)
		}
	}
	t := &Engine{S: s, Teacher: teacher, Losses: losses, Optim: c.Optim, src: c.Weights}
	cfg := s.Cfg
	rows, H, F := s.Batch*s.Seq, cfg.HiddenSize, cfg.IntermediateSize
	uw := F
	if cfg.GatedMLP() {
		uw = 2 * F
	}
	var err error
	one := func(dst *cuda.Buf, n int, zero bool) {
		if err != nil {
			return
		}
		if *dst, err = t.alloc(n); err != nil {
			return
		}
		if zero {
			err = s.d.Zero(*dst)
		}
	}
	// under ZeRO the whole moments (1, 2) and gradient arena (2: buckets)
	// are never allocated, not even until Shard frees them; bf16 products
	// write bf16 gradients (ZeRO 1: the arena the engine reduces into its
	// shard's sum, buckets.go)
	switch {
	case s.bf16 && c.Zero <= 1:
		t.gl = newGradLayout(s.params)
		one(&t.grad, t.gl.nF, true)
		if err == nil {
			if t.gradB, err = t.allocB(t.gl.nB); err == nil {
				err = s.d.Zero(words(t.gradB))
			}
		}
	case c.Zero < 2:
		one(&t.grad, s.arenaN, true)
	}
	if c.Zero < 1 && !c.Offload {
		one(&t.mom1, s.arenaN, true)
		one(&t.mom2, s.arenaN, true)
	}
	one(&t.g, rows*H, false)
	one(&t.dh, rows*H, false)
	one(&t.da, rows*F, false)
	one(&t.du, rows*uw, false)
	one(&t.datt, rows*cfg.QDim(), false)
	one(&t.dqkv, rows*(cfg.QDim()+2*cfg.KVDim()), false)
	one(&t.rowLoss, rows, false)
	if cfg.QKNorm() {
		one(&t.qkScratch, rows*(cfg.QDim()+2*cfg.KVDim()), false)
	}
	if len(losses.TrainTerms()) > 1 {
		one(&t.mix, s.LogitChunk()*cfg.VocabSize, false)
	}
	if k := losses.TopK; k > 0 {
		if k > cfg.VocabSize {
			t.Free()
			return nil, fmt.Errorf("gpu: top-k %d is larger than the vocabulary (%d)", k, cfg.VocabSize)
		}
		one(&t.topIdx, rows*k, false)
		one(&t.topVal, rows*k, false)
	}
	if err == nil && s.bf16 {
		for _, x := range []struct {
			dst *cuda.BF16
			n   int
		}{{&t.Gb, s.LogitChunk() * cfg.VocabSize}, {&t.gb, rows * H}, {&t.dub, rows * uw}, {&t.dqkvb, rows * (cfg.QDim() + 2*cfg.KVDim())}} {
			if *x.dst, err = t.allocB(x.n); err != nil {
				break
			}
		}
	}
	if err == nil && len(losses.Intermediate) > 0 {
		err = t.newISLoss(losses.Intermediate, c.Weights)
	}
	if err == nil && c.Offload {
		if t.gl == nil || !s.weightsBF16 {
			err = fmt.Errorf("gpu: optimizer offload needs a student with bf16-only weights (Options.WeightsBF16) and ZeRO 0")
		} else {
			err = t.newOffload(c.Weights)
		}
	}
	if err != nil {
		t.Free()
		return nil, err
	}
	t.hostLoss = make([]float32, rows)
	return t, nil
}

// Free returns the engine's buffers (not the models') to the pool.
func (t *Engine) Free() {
	for _, b := range t.owned {
		t.S.d.Free(b)
	}
	for _, b := range t.ownedB {
		t.S.d.FreeBF16(b)
	}
	t.owned, t.ownedB = nil, nil
}

// alloc and allocB allocate buffers the engine owns (Free returns them).
func (t *Engine) alloc(n int) (cuda.Buf, error) {
	b, err := t.S.d.Alloc(n)
	if err == nil {
		t.owned = append(t.owned, b)
	}
	return b, err
}

func (t *Engine) allocB(n int) (cuda.BF16, error) {
	b, err := t.S.d.AllocBF16(n)
	if err == nil {
		t.ownedB = append(t.ownedB, b)
	}
	return b, err
}

// Close frees the engine's buffers and what NewEngine opened for it.
func (t *Engine) Close() error {
	t.Free()
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
	t.closers = nil
	return nil
}

func (t *Engine) gradOf(name string) cuda.Buf {
	i, ok := t.S.byName[name]
	if !ok {
		return cuda.Buf{}
	}
	return t.gradParam(i, t.S.params[i].n)
}

// ensure allocates the whole gradient arena (without buckets) and the
// whole moments (without a shard) that NewEngineFor left out for a ZeRO
// stage, should the engine run without it.
func (t *Engine) ensure(grad, moments bool) error {
	d, n := t.S.d, t.S.arenaN
	var err error
	one := func(dst *cuda.Buf) {
		if err != nil || dst.N != 0 {
			return
		}
		if *dst, err = t.alloc(n); err == nil {
			err = d.Zero(*dst)
		}
	}
	if grad && t.bk == nil {
		one(&t.grad)
	}
	if moments && t.shard == nil {
		one(&t.mom1)
		one(&t.mom2)
	}
	return err
}

// stepGrad is the buffer holding the step's gradient: the accumulation
// arena over several micro-batches, else the backward pass's own.
func (t *Engine) stepGrad() cuda.Buf {
	if t.stepMicro > 1 && !t.ownGrad() {
		return t.acc
	}
	return t.grad
}

// forward runs the teacher (when a loss reads it) and the student on a
// micro-batch.
func (t *Engine) forward(tokens [][]int32) error {
	if err := t.S.SetBatch(tokens); err != nil {
		return err
	}
	if t.Teacher != nil {
		if err := t.Teacher.SetBatch(tokens); err != nil {
			return err
		}
		if err := t.teacherForward(); err != nil {
			return fmt.Errorf("teacher forward: %w", err)
		}
	}
	if err := t.S.Forward(); err != nil {
		return fmt.Errorf("student forward: %w", err)
	}
	return nil
}

// Micro implements distill.Engine: the teacher, the student's forward
// pass, the loss terms and their gradient in place over the logits, the
// intermediate-state loss, and the backward pass into the step's gradient.
func (t *Engine) Micro(tokens [][]int32, i, n int) (distill.Parts, error) {
	s, d := t.S, t.S.d
	t.stepMicro = n
	accumulate := n > 1 && !t.ownGrad() // ZeRO 2: the core sums each micro-batch's gradient on the shard
	if err := t.ensure(true, false); err != nil {
		return distill.Parts{}, err
	}
	if t.bk != nil {
		t.bk.first = i == 0
		if i == 0 {
			if err := t.shardSums(n); err != nil {
				return distill.Parts{}, err
			}
		}
	}
	if accumulate && t.acc.N == 0 {
		n := s.arenaN
		if t.gl != nil {
			n = t.gl.nF
		}
		var err error
		if t.acc, err = t.alloc(n); err != nil {
			return distill.Parts{}, err
		}
		if t.gl != nil {
			if t.accB, err = t.allocB(t.gl.nB); err != nil {
				return distill.Parts{}, err
			}
		}
	}
	if err := t.forward(tokens); err != nil {
		return distill.Parts{}, err
	}
	terms := t.Losses.TrainTerms()
	p, err := t.loss(terms, n, true)
	if err != nil {
		return p, err
	}
	if t.is != nil {
		if err := t.is.forward(s, &p, terms); err != nil {
			return p, err
		}
		// with buckets the projection's gradient is the micro-batch's own,
		// flushed into the shard with the rest
		if err := t.is.backward(s, p.ISAlpha, n, i == 0 || t.bk != nil); err != nil {
			return p, err
		}
	}
	p.Loss = distill.Mix(terms, p)
	if l := float64(p.Loss); math.IsNaN(l) || math.IsInf(l, 0) {
		return p, nil // the core stops the step; a backward pass would be wasted
	}
	if err := t.backward(); err != nil {
		return p, err
	}
	if accumulate {
		if i == 0 {
			err = d.CopyBuf(t.acc, t.grad)
			if err == nil && t.gl != nil {
				err = d.CopyBuf(words(t.accB), words(t.gradB))
			}
		} else {
			err = d.Add(t.acc, t.grad)
			if err == nil && t.gl != nil {
				err = d.AddBF16(t.accB, t.gradB)
			}
		}
	}
	return p, err
}

// GradSumSquares implements distill.Engine.
func (t *Engine) GradSumSquares() (float64, error) {
	if t.shard != nil {
		return t.shardSumSquares()
	}
	grads := []cuda.Buf{t.stepGrad()}
	if t.is != nil {
		grads = append(grads, t.is.g)
	}
	ss, err := t.S.d.SumSquares(grads...)
	if err != nil || t.gl == nil {
		return ss, err
	}
	sb, err := t.S.d.SumSquaresBF16(t.stepGradB())
	return ss + sb, err
}

// Update implements distill.Engine: clipping, then AdamW per tensor with
// the core's scalars, then the bf16 shadow.
func (t *Engine) Update(lr float64, clip float32, step int) error {
	if t.shard != nil {
		return t.updateShard(lr, clip, step)
	}
	if t.off != nil {
		return t.updateOffload(lr, clip, step)
	}
	s, d := t.S, t.S.d
	if t.masters() {
		return fmt.Errorf("gpu: the f32 master weights of a bf16 ZeRO engine are sharded: Update needs Shard first")
	}
	if err := t.ensure(false, true); err != nil {
		return err
	}
	if err := t.clipGrads(clip); err != nil {
		return err
	}
	g := t.stepGrad()
	for i, p := range s.params {
		sc := t.Optim.Scalars(lr, step, model.TensorInfo{Name: p.name, Shape: p.shape})
		if p.off < 0 {
			return fmt.Errorf("gpu: %s has no f32 master weights here (sharded over the ranks: Shard)", p.name)
		}
		w, m1, m2 := s.W.Slice(p.off, p.off+p.n), t.mom1.Slice(p.aoff, p.aoff+p.n), t.mom2.Slice(p.aoff, p.aoff+p.n)
		if gl := t.gl; gl != nil {
			var err error
			if gl.bf[i] {
				err = d.AdamWBF16Grad(w, t.stepGradB().Slice(gl.at[i], gl.at[i]+p.n), m1, m2, sc)
			} else {
				err = d.AdamW(w, g.Slice(gl.at[i], gl.at[i]+p.n), m1, m2, sc)
			}
			if err != nil {
				return err
			}
			continue
		}
		if err := d.AdamW(w, g.Slice(p.aoff, p.aoff+p.n), m1, m2, sc); err != nil {
			return err
		}
	}
	if err := t.updateISProj(lr, step); err != nil {
		return err
	}
	if s.bf16 {
		return s.RefreshBF16()
	}
	return nil
}

// clipGrads multiplies the step's whole gradient by clip (1: none).
func (t *Engine) clipGrads(clip float32) error {
	if clip == 1 {
		return nil
	}
	d := t.S.d
	for _, b := range []cuda.Buf{t.stepGrad(), t.isGrad()} {
		if b.N == 0 {
			continue
		}
		if err := d.Scale(b, clip); err != nil {
			return err
		}
	}
	if t.gl != nil {
		return d.ScaleBF16(t.stepGradB(), clip)
	}
	return nil
}

// updateISProj steps the intermediate-state projection (on the device
// always: it is small).
func (t *Engine) updateISProj(lr float64, step int) error {
	l := t.is
	if l == nil {
		return nil
	}
	sc := t.Optim.Scalars(lr, step, model.TensorInfo{Name: distill.ISProjName, Shape: []int{l.ht, l.hs}})
	return t.S.d.AdamW(l.w, l.g, l.m1, l.m2, sc)
}

// ownGrad reports ZeRO 2: no gradient kept over a step's micro-batches.
func (t *Engine) ownGrad() bool { return t.shard != nil && t.shard.ownGrad }

func (t *Engine) isGrad() cuda.Buf {
	if t.is == nil {
		return cuda.Buf{}
	}
	return t.is.g
}

// loss computes the given terms over the student's logits a chunk of
// rows at a time (Model.LogitChunk; one chunk unless the models were built
// with Options.LogitChunk), each term from a copy of the chunk's logits
// when there are several. In training their gradients, scaled by
// weight/(tokens × accum), are summed in place over the chunk's logits, as
// the CPU engine's loss op does, and the chunk goes back through the head:
// the head's weight gradient accumulates over the chunks and dh gets the
// chunk's rows. In evaluation the kernels run zero-weighted, which leaves
// the logits as they are. The per-row losses are summed on the host in row
// order, whatever the chunking.
func (t *Engine) loss(terms []distill.Term, accum int, train bool) (distill.Parts, error) {
	s, d := t.S, t.S.d
	rows, V, H := s.Batch*s.Seq, s.Cfg.VocabSize, s.Cfg.HiddenSize
	C := s.LogitChunk()
	gs := 1 / float32(rows*accum)
	sums := make([]float64, len(terms))
	head := s.arch.HeadTensor()
	var p distill.Parts
	for r0 := 0; r0 < rows; r0 += C {
		n := min(C, rows-r0)
		if s.Chunked() {
			if err := s.LogitsRows(r0, r0+n); err != nil {
				return p, err
			}
		}
		if t.Teacher != nil {
			if t.Teacher.Chunked() {
				if err := t.Teacher.LogitsRows(r0, r0+n); err != nil {
					return p, fmt.Errorf("teacher: %w", err)
				}
			}
			if err := t.teacherTopK(r0, n); err != nil {
				return p, err
			}
		}
		x := s.logits.Slice(0, n*V)
		src := x
		if train && len(terms) > 1 {
			if err := d.CopyBuf(t.mix.Slice(0, n*V), x); err != nil {
				return p, err
			}
			src = t.mix.Slice(0, n*V)
		}
		rl := t.rowLoss.Slice(r0, r0+n)
		for i, term := range terms {
			scale, acc := float32(term.Weight)*gs, i > 0
			if !train {
				scale, acc = 0, true
			}
			var err error
			switch term.Kind {
			case distill.TermCE:
				err = d.SoftmaxCrossEntropy(x, src, s.targets.Slice(r0, r0+n), n, V, scale, acc, rl)
			case distill.TermKL:
				err = t.klForward(x, src, r0, n, scale, acc, rl)
			case distill.TermRKL:
				err = d.KLReverse(x, src, t.Teacher.logits.Slice(0, n*V), n, V, t.Losses.Tau(), scale, acc, rl)
			}
			if err != nil {
				return p, err
			}
			if err := d.Download(t.hostLoss[r0:r0+n], rl); err != nil {
				return p, err
			}
			for _, v := range t.hostLoss[r0 : r0+n] {
				sums[i] += float64(v)
			}
		}
		if !train {
			continue
		}
		// the head's backward over the chunk: dW_head (+)= Gᵀ·hf, dh = G·W
		beta := float32(1)
		if r0 == 0 {
			beta = 0
		}
		hfb := s.hfb // none outside bf16 mode
		if s.bf16 {
			hfb = hfb.Off(r0 * H)
		}
		err := firstErr(
			s.toB(t.Gb, x),
			t.wgradRows(n, beta, head, x, t.Gb, 0, V, V, s.hf.Off(r0*H), hfb, H),
			t.dgradRows(n, t.dh.Off(r0*H), x, t.Gb, 0, V, V, head, H, false))
		if err != nil {
			return p, fmt.Errorf("backward through the head: %w", err)
		}
	}
	for i, term := range terms {
		p.Set(term.Kind, sums[i]/float64(rows))
	}
	return p, nil
}

// normBack: dx (overwritten or accumulated), and the weight (and bias)
// gradients of a norm over x.
func (t *Engine) normBack(dx, dy, x, mean, rstd cuda.Buf, w, b string, accumulate bool) error {
	s := t.S
	rows, H := s.Batch*s.Seq, s.Cfg.HiddenSize
	if s.rms {
		return s.d.RMSNormBackward(dx, t.gradOf(w), dy, x, s.P(w), rstd, rows, H, accumulate)
	}
	var db cuda.Buf
	if s.normBias {
		db = t.gradOf(b)
	}
	return s.d.LayerNorm1PBackward(dx, t.gradOf(w), db, dy, x, s.P(w), mean, rstd, rows, H, accumulate)
}

// wgrad writes dW [out, in] = dy[:, off:off+out]ᵀ·x over the
// micro-batch's rows, dy of row stride ldy (dyb and xb: their bf16
// copies, used in bf16 mode).
func (t *Engine) wgrad(name string, dy cuda.Buf, dyb cuda.BF16, off, ldy, out int, x cuda.Buf, xb cuda.BF16, in int) error {
	return t.wgradRows(t.S.Batch*t.S.Seq, 0, name, dy, dyb, off, ldy, out, x, xb, in)
}

// wgradRows is wgrad over rows rows, adding beta·dW (the head's
// gradient over the logit chunks).
func (t *Engine) wgradRows(rows int, beta float32, name string, dy cuda.Buf, dyb cuda.BF16, off, ldy, out int, x cuda.Buf, xb cuda.BF16, in int) error {
	s := t.S
	if gb, ok := t.gradOfB(name); ok {
		return s.d.GemmBF16Out(true, false, out, in, rows, 1, dyb.Off(off), ldy, xb, in, beta, gb, in)
	}
	if s.bf16 {
		return s.d.GemmBF16(true, false, out, in, rows, 1, dyb.Off(off), ldy, xb, in, beta, t.gradOf(name), in)
	}
	return s.d.Sgemm(true, false, out, in, rows, 1, dy.Off(off), ldy, x, in, beta, t.gradOf(name), in)
}

// dgrad writes (or adds) dx [rows, in] = dy[:, off:off+out]·W over the
// micro-batch's rows.
func (t *Engine) dgrad(dx cuda.Buf, dy cuda.Buf, dyb cuda.BF16, off, ldy, out int, name string, in int, accumulate bool) error {
	return t.dgradRows(t.S.Batch*t.S.Seq, dx, dy, dyb, off, ldy, out, name, in, accumulate)
}

// dgradRows is dgrad over rows rows (a logit chunk's).
func (t *Engine) dgradRows(rows int, dx cuda.Buf, dy cuda.Buf, dyb cuda.BF16, off, ldy, out int, name string, in int, accumulate bool) error {
	s := t.S
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	if s.bf16 {
		return s.d.GemmBF16(false, false, rows, in, out, 1, dyb.Off(off), ldy, s.PB(name), in, beta, dx, in)
	}
	return s.d.Sgemm(false, false, rows, in, out, 1, dy.Off(off), ldy, s.P(name), in, beta, dx, in)
}

// biasGrad writes the gradients of a product's biases bs (none, or one
// per weight, side by side like its outputs): the column sums of dy
// [rows, n].
func (t *Engine) biasGrad(dy cuda.Buf, bs ...string) error {
	s := t.S
	// the biases are side by side in the arena and in their bucket: one
	// window from the first's
	_, n, err := s.biasSpan(bs)
	if err != nil || n == 0 {
		return err
	}
	rows := s.Batch * s.Seq
	return s.d.ColSum(t.gradParam(s.byName[bs[0]], n), dy.Slice(0, rows*n), rows, n)
}

func (t *Engine) backward() error {
	s := t.S
	d := s.d
	c := s.Cfg
	rows, H, F, L := s.Batch*s.Seq, c.HiddenSize, c.IntermediateSize, c.NumLayers
	QD, KVD := c.QDim(), c.KVDim()
	W := QD + 2*KVD
	// the head's backward ran chunk by chunk in loss: dh holds its part,
	// and the untied head's gradient is complete
	if t.bk != nil {
		if err := t.flush(t.bk.head); err != nil {
			return err
		}
	}
	if err := firstErr(
		t.is.addGrad(d, L, t.dh),
		t.normBack(t.g, t.dh, s.xs[L], s.meanf, s.rstdf, "model.norm.weight", "model.norm.bias", false)); err != nil {
		return fmt.Errorf("backward through the head: %w", err)
	}
	dims := s.dims()
	rot := c.RotaryDim()
	for l := L - 1; l >= 0; l-- {
		w := s.arch.Layer(l)
		if err := t.openLayer(l); err != nil {
			return err
		}
		switch {
		case s.recompute:
			if err := s.recomputeLayer(l); err != nil {
				return fmt.Errorf("backward: recomputing layer %d: %w", l, err)
			}
		case s.packed:
			if err := s.loadLayer(l); err != nil {
				return fmt.Errorf("backward: layer %d's bf16 activations: %w", l, err)
			}
		}
		i, j := s.set(l), s.at(l) // the layer's f32 activation set; its statistics and bf16 product inputs
		h1b, attb, h2b, ab := bAt(s.h1b, j), bAt(s.attb, j), bAt(s.h2b, j), bAt(s.ab, j)
		// MLP: xs[l+1] = xmid + a·Wdᵀ + b
		err := firstErr(
			s.toB(t.gb, t.g),
			t.wgrad(w.Down, t.g, t.gb, 0, H, H, s.a[i], ab, F),
			t.dgrad(t.da, t.g, t.gb, 0, H, H, w.Down, F, false),
			t.biasGrad(t.g, w.DownBias))
		if err == nil {
			if c.GatedMLP() {
				err = firstErr(
					d.BackwardGated(s.act, t.du, t.du.Off(F), t.da, s.u[i], s.u[i].Off(F), rows, F, 2*F),
					s.toB(t.dub, t.du),
					t.wgrad(w.Gate, t.du, t.dub, 0, 2*F, F, s.h2[i], h2b, H),
					t.wgrad(w.Up, t.du, t.dub, F, 2*F, F, s.h2[i], h2b, H),
					t.dgrad(t.dh, t.du, t.dub, 0, 2*F, F, w.Gate, H, false),
					t.dgrad(t.dh, t.du, t.dub, F, 2*F, F, w.Up, H, true),
					t.biasGrad(t.du, w.GateBias, w.UpBias))
			} else {
				err = firstErr(
					d.ActivationBackward(s.act, t.du, t.da, s.u[i]),
					s.toB(t.dub, t.du),
					t.wgrad(w.Up, t.du, t.dub, 0, F, F, s.h2[i], h2b, H),
					t.dgrad(t.dh, t.du, t.dub, 0, F, F, w.Up, H, false),
					t.biasGrad(t.du, w.UpBias))
			}
		}
		if err == nil {
			err = t.normBack(t.g, t.dh, s.xmid[i], s.mean2[j], s.rstd2[j], w.MLPNorm, w.MLPNormBias, true)
		}
		if err != nil {
			return fmt.Errorf("backward through layer %d's MLP: %w", l, err)
		}
		// attention: xmid = xs[l] + att·Woᵀ + b
		q := s.qkv[i]
		attnBack := d.AttentionBackward
		if s.AttnTC {
			attnBack = d.AttentionBackwardTC
		}
		if s.recompute {
			// each (sequence, KV group)'s scores again, then its backward
			attnBack = func(dq, dk, dv, dout, q, k, v, probs cuda.Buf, _ kernels.AttnDims, ldq, ldk, ldv int) error {
				return s.attnGroups(s.att[i], q, probs, func(gd kernels.AttnDims, qo, ko, vo, ao int) error {
					return d.AttentionBackwardTC(dq.Off(qo), dq.Off(ko), dq.Off(vo), dout.Off(ao), q.Off(qo), q.Off(ko), q.Off(vo), probs, gd, ldq, ldk, ldv)
				})
			}
		}
		err = firstErr(
			s.toB(t.gb, t.g),
			t.wgrad(w.O, t.g, t.gb, 0, H, H, s.att[i], attb, QD),
			t.dgrad(t.datt, t.g, t.gb, 0, H, H, w.O, QD, false),
			t.biasGrad(t.g, w.OBias),
			attnBack(t.dqkv, t.dqkv.Off(QD), t.dqkv.Off(QD+KVD), t.datt, q, q.Off(QD), q.Off(QD+KVD), s.probs[i], dims, W, W, W))
		if err == nil && rot > 0 {
			// RoPE is a rotation: its backward is the inverse rotation.
			err = firstErr(
				d.ApplyRope(t.dqkv, rows, W, c.NumHeads, c.HeadDim, rot, s.pos, s.cos, s.sin, true),
				d.ApplyRope(t.dqkv.Off(QD), rows, W, c.NumKVHeads, c.HeadDim, rot, s.pos, s.cos, s.sin, true))
		}
		if err == nil && w.QNorm != "" {
			err = s.qkNormBackward(l, t.dqkv, t.qkScratch, t.gradOf(w.QNorm), t.gradOf(w.KNorm), w.QNorm, w.KNorm)
		}
		if err == nil {
			err = firstErr(
				s.toB(t.dqkvb, t.dqkv),
				t.wgrad(w.Q, t.dqkv, t.dqkvb, 0, W, QD, s.h1[i], h1b, H),
				t.wgrad(w.K, t.dqkv, t.dqkvb, QD, W, KVD, s.h1[i], h1b, H),
				t.wgrad(w.V, t.dqkv, t.dqkvb, QD+KVD, W, KVD, s.h1[i], h1b, H),
				t.dgrad(t.dh, t.dqkv, t.dqkvb, 0, W, QD, w.Q, H, false),
				t.dgrad(t.dh, t.dqkv, t.dqkvb, QD, W, KVD, w.K, H, true),
				t.dgrad(t.dh, t.dqkv, t.dqkvb, QD+KVD, W, KVD, w.V, H, true),
				t.biasGrad(t.dqkv, w.QBias, w.KBias, w.VBias),
				t.is.addGrad(d, l, t.dh),
				t.normBack(t.g, t.dh, s.xs[l], s.mean1[j], s.rstd1[j], w.AttnNorm, w.AttnNormBias, true))
		}
		if err != nil {
			return fmt.Errorf("backward through layer %d's attention: %w", l, err)
		}
		if t.buckets() {
			if err := t.flush(t.bk.layers[l]); err != nil {
				return fmt.Errorf("backward through layer %d: %w", l, err)
			}
		}
	}
	// tied: the head's gradient is already in the embedding's; the
	// lookup's adds to it
	if eb, ok := t.gradOfB(model.EmbedTensor); ok {
		// ZeRO 2's bf16 bucket (the untied head's was flushed)
		if !c.TieWordEmbeddings {
			if err := d.Zero(wholeWords(t.bk.big.b)); err != nil {
				return err
			}
		}
		if err := t.embedBackwardBF16(eb); err != nil {
			return fmt.Errorf("backward through the embedding: %w", err)
		}
		return t.flushTail()
	}
	emb := t.gradOf(model.EmbedTensor)
	if !c.TieWordEmbeddings {
		if err := d.Zero(emb); err != nil {
			return err
		}
	}
	if err := d.EmbeddingBackward(emb, t.g, s.ids, rows, H); err != nil {
		return err
	}
	return t.flushTail()
}

// Params returns the current weights of every tensor, by name (a download:
// for tests and checkpoints; bf16-only weights come back widened to f32).
func (m *Model) Params() (map[string][]float32, error) {
	out := map[string][]float32{}
	for _, p := range m.params {
		host := make([]float32, p.n)
		if err := m.downloadParam(p, host); err != nil {
			return nil, err
		}
		out[p.name] = host
	}
	return out, nil
}
