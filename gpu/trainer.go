//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Losses weights the losses as distill.Losses does: CE, forward and
// reverse KL, the forward KL on the teacher's top-k logits, and the
// intermediate-state cosine loss on hidden-state pairs (intermediate.go).
type Losses struct {
	CE, KL    float64
	ReverseKL float64
	// TopK > 0: the forward KL on the teacher's k largest logits only,
	// selected on the device (cuda.Device.TopK; on the host for a k above
	// Device.MaxTopK).
	TopK        int
	Temperature float64 // τ of the KL; 0 means 1
	// Intermediate adds the cosine loss on these (student, teacher)
	// hidden-state pairs with the dynamic weight α = L_logits/L_is; its
	// projection is set with Trainer.SetISProjection.
	Intermediate []Pair
}

// terms is the number of weighted losses.
func (l Losses) terms() int {
	n := 0
	for _, w := range []float64{l.CE, l.KL, l.ReverseKL} {
		if w != 0 {
			n++
		}
	}
	return n
}

func (l Losses) needsTeacher() bool { return l.KL != 0 || l.ReverseKL != 0 || len(l.Intermediate) > 0 }

func (l Losses) tau() float32 {
	if l.Temperature <= 0 {
		return 1
	}
	return float32(l.Temperature)
}

// Optim is distill.AdamW's hyperparameters plus clipping; the learning
// rate comes with each step.
type Optim struct {
	Beta1, Beta2, Eps, WeightDecay float64
	DecayAll                       bool    // decay norms, biases and embeddings too
	Clip                           float64 // max global gradient norm; 0 = none
}

// DefaultOptim is torch's AdamW defaults (β 0.9/0.999, ε 1e-8), no decay,
// no clipping: what distill.NewAdamW(n, 0) uses.
var DefaultOptim = Optim{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}

// Trainer is a student Model with its gradients and AdamW moments on the
// device and, for the KL, a teacher Model.
type Trainer struct {
	S       *Model
	Teacher *Model
	Losses  Losses
	Optim   Optim
	Step    int // optimizer steps done

	grad, mom1, mom2 cuda.Buf // arenas in the parameter layout
	acc              cuda.Buf // gradient sum over a step's micro-batches (TrainStepAccum)
	g, dh, da, du    cuda.Buf // residual-stream gradient and scratch
	datt, dqkv, mix  cuda.Buf
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
}

// StepMetrics are one step's results (means over its tokens), as
// distill.StepMetrics.
type StepMetrics struct {
	Step     int     `json:"step"`
	LR       float64 `json:"lr"`
	Loss     float64 `json:"loss"`
	CE       float64 `json:"ce,omitempty"`
	KL       float64 `json:"kl,omitempty"`
	RKL      float64 `json:"reverse_kl,omitempty"`
	IS       float64 `json:"is,omitempty"`       // intermediate-state cosine loss
	ISAlpha  float64 `json:"is_alpha,omitempty"` // its weight α = L_logits/L_is
	GradNorm float64 `json:"grad_norm"`
}

// NewTrainer wires a trainer for student s (built with train = true);
// teacher may be nil when Losses.KL is 0. For bf16 products call
// s.EnableBF16 (and the teacher's) first.
func NewTrainer(s, teacher *Model, losses Losses, opt Optim) (*Trainer, error) {
	if !s.train {
		return nil, fmt.Errorf("gpu: the student model was built without train")
	}
	if losses.CE < 0 || losses.KL < 0 || losses.ReverseKL < 0 || losses.terms() == 0 {
		return nil, fmt.Errorf("gpu: loss weights ce %g, kl %g, reverse kl %g: want ≥ 0 and not all 0", losses.CE, losses.KL, losses.ReverseKL)
	}
	if losses.needsTeacher() {
		if teacher == nil {
			return nil, fmt.Errorf("gpu: the KL and intermediate-state losses need a teacher")
		}
		if teacher.Cfg.VocabSize != s.Cfg.VocabSize || teacher.Batch != s.Batch || teacher.Seq != s.Seq {
			return nil, fmt.Errorf("gpu: teacher (vocab %d, %d×%d) does not match the student (vocab %d, %d×%d)",
				teacher.Cfg.VocabSize, teacher.Batch, teacher.Seq, s.Cfg.VocabSize, s.Batch, s.Seq)
		}
	}
	t := &Trainer{S: s, Teacher: teacher, Losses: losses, Optim: opt}
	c := s.Cfg
	rows, H, F := s.Batch*s.Seq, c.HiddenSize, c.IntermediateSize
	uw := F
	if c.GatedMLP() {
		uw = 2 * F
	}
	var err error
	one := func(dst *cuda.Buf, n int, zero bool) {
		if err != nil {
			return
		}
		if *dst, err = s.d.Alloc(n); err != nil {
			return
		}
		t.owned = append(t.owned, *dst)
		if zero {
			err = s.d.Zero(*dst)
		}
	}
	one(&t.grad, s.W.N, true)
	one(&t.mom1, s.W.N, true)
	one(&t.mom2, s.W.N, true)
	one(&t.g, rows*H, false)
	one(&t.dh, rows*H, false)
	one(&t.da, rows*F, false)
	one(&t.du, rows*uw, false)
	one(&t.datt, rows*c.QDim(), false)
	one(&t.dqkv, rows*(c.QDim()+2*c.KVDim()), false)
	one(&t.rowLoss, rows, false)
	if losses.terms() > 1 {
		one(&t.mix, rows*c.VocabSize, false)
	}
	if k := losses.TopK; k > 0 {
		if k > c.VocabSize || losses.KL == 0 || losses.ReverseKL != 0 {
			t.Free()
			return nil, fmt.Errorf("gpu: top-k %d needs the forward KL, no reverse KL and k ≤ the vocabulary (%d)", k, c.VocabSize)
		}
		one(&t.topIdx, rows*k, false)
		one(&t.topVal, rows*k, false)
	}
	if err == nil && s.bf16 {
		for _, x := range []struct {
			dst *cuda.BF16
			n   int
		}{{&t.Gb, rows * c.VocabSize}, {&t.gb, rows * H}, {&t.dub, rows * uw}, {&t.dqkvb, rows * (c.QDim() + 2*c.KVDim())}} {
			if *x.dst, err = s.d.AllocBF16(x.n); err != nil {
				break
			}
			t.ownedB = append(t.ownedB, *x.dst)
		}
	}
	if err == nil && len(losses.Intermediate) > 0 {
		err = t.newISLoss(losses.Intermediate)
	}
	if err != nil {
		t.Free()
		return nil, err
	}
	t.hostLoss = make([]float32, rows)
	return t, nil
}

// Free returns the trainer's buffers (not the models') to the pool.
func (t *Trainer) Free() {
	for _, b := range t.owned {
		t.S.d.Free(b)
	}
	for _, b := range t.ownedB {
		t.S.d.FreeBF16(b)
	}
	t.owned, t.ownedB = nil, nil
}

func (t *Trainer) gradOf(name string) cuda.Buf {
	i, ok := t.S.byName[name]
	if !ok {
		return cuda.Buf{}
	}
	p := t.S.params[i]
	return t.grad.Slice(p.off, p.off+p.n)
}

// meanLoss downloads the per-row losses and averages them.
func (t *Trainer) meanLoss() (float64, error) {
	if err := t.S.d.Download(t.hostLoss, t.rowLoss); err != nil {
		return 0, err
	}
	var s float64
	for _, v := range t.hostLoss {
		s += float64(v)
	}
	return s / float64(len(t.hostLoss)), nil
}

// TrainStep runs one optimizer step on tokens [Batch][Seq+1] at learning
// rate lr: teacher forward (KL), student forward, the loss and its gradient
// in place over the logits, backward, clipping, AdamW.
func (t *Trainer) TrainStep(tokens [][]int32, lr float64) (StepMetrics, error) {
	return t.TrainStepAccum([][][]int32{tokens}, lr)
}

// TrainStepAccum runs one optimizer step over several micro-batches
// (gradient accumulation, as distill.Trainer with Accum = len(micro)): the
// loss gradient of each is scaled by 1/(all tokens of the step), the
// parameter gradients are summed in a second arena (allocated on first
// use), and the metrics are the means over the micro-batches.
func (t *Trainer) TrainStepAccum(micro [][][]int32, lr float64) (StepMetrics, error) {
	s, d := t.S, t.S.d
	m := StepMetrics{Step: t.Step + 1, LR: lr}
	n := len(micro)
	if n == 0 {
		return m, fmt.Errorf("gpu: a step needs at least one micro-batch")
	}
	g := t.grad
	if n > 1 {
		if t.acc.N == 0 {
			var err error
			if t.acc, err = d.Alloc(s.W.N); err != nil {
				return m, err
			}
			t.owned = append(t.owned, t.acc)
		}
		g = t.acc
	}
	for i, tokens := range micro {
		if err := s.SetBatch(tokens); err != nil {
			return m, err
		}
		if t.Losses.needsTeacher() {
			if err := t.Teacher.SetBatch(tokens); err != nil {
				return m, err
			}
			if err := t.teacherForward(); err != nil {
				return m, fmt.Errorf("teacher forward: %w", err)
			}
			if err := t.teacherTopK(); err != nil {
				return m, err
			}
		}
		if err := s.Forward(); err != nil {
			return m, fmt.Errorf("student forward: %w", err)
		}
		var mm StepMetrics
		if err := t.loss(&mm, n); err != nil {
			return m, err
		}
		if t.is != nil {
			if err := t.is.forward(s, &mm, n, i == 0); err != nil {
				return m, err
			}
		}
		m.Loss += mm.Loss / float64(n)
		m.CE += mm.CE / float64(n)
		m.KL += mm.KL / float64(n)
		m.RKL += mm.RKL / float64(n)
		m.IS += mm.IS / float64(n)
		m.ISAlpha += mm.ISAlpha / float64(n)
		if math.IsNaN(mm.Loss) || math.IsInf(mm.Loss, 0) {
			return m, &NonFiniteError{Step: m.Step, What: "loss", Value: mm.Loss}
		}
		if err := t.backward(); err != nil {
			return m, err
		}
		if n > 1 {
			var err error
			if i == 0 {
				err = d.CopyBuf(t.acc, t.grad)
			} else {
				err = d.Add(t.acc, t.grad)
			}
			if err != nil {
				return m, err
			}
		}
	}
	grads := []cuda.Buf{g}
	if t.is != nil {
		grads = append(grads, t.is.g)
	}
	ss, err := d.SumSquares(grads...)
	if err != nil {
		return m, err
	}
	m.GradNorm = math.Sqrt(ss)
	if math.IsNaN(m.GradNorm) || math.IsInf(m.GradNorm, 0) {
		return m, &NonFiniteError{Step: m.Step, What: "gradient norm", Value: m.GradNorm}
	}
	if c := t.Optim.Clip; c > 0 && m.GradNorm > c {
		for _, b := range grads {
			if err := d.Scale(b, float32(c/(m.GradNorm+1e-6))); err != nil {
				return m, err
			}
		}
	}
	t.Step++
	o := t.Optim
	hp := cuda.AdamWStep{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, LR: lr, WeightDecay: o.WeightDecay, Step: t.Step}
	for _, p := range s.params {
		w, gp := s.W.Slice(p.off, p.off+p.n), g.Slice(p.off, p.off+p.n)
		if err := d.AdamW(w, gp, t.mom1.Slice(p.off, p.off+p.n), t.mom2.Slice(p.off, p.off+p.n), hp, p.noDecay && !o.DecayAll); err != nil {
			return m, err
		}
	}
	if l := t.is; l != nil {
		if err := d.AdamW(l.w, l.g, l.m1, l.m2, hp, false); err != nil {
			return m, err
		}
	}
	if s.bf16 {
		if err := s.RefreshBF16(); err != nil {
			return m, err
		}
	}
	return m, nil
}

// loss computes the weighted loss mix over the student's logits and leaves
// its gradient (scaled by 1/(tokens × accum), accum micro-batches a step)
// in the logits buffer, term by term as distill's computeLoss does.
func (t *Trainer) loss(m *StepMetrics, accum int) error {
	s, d := t.S, t.S.d
	rows, V := s.Batch*s.Seq, s.Cfg.VocabSize
	x := s.logits
	src := x
	if t.Losses.terms() > 1 {
		if err := d.CopyBuf(t.mix, x); err != nil {
			return err
		}
		src = t.mix
	}
	gs := 1 / float32(rows*accum)
	acc := false
	if w := t.Losses.CE; w != 0 {
		if err := d.SoftmaxCrossEntropy(x, src, s.targets, rows, V, float32(w)*gs, acc, t.rowLoss); err != nil {
			return err
		}
		v, err := t.meanLoss()
		if err != nil {
			return err
		}
		m.CE = v
		m.Loss += w * v
		acc = true
	}
	if w := t.Losses.KL; w != 0 {
		if err := t.klForward(x, src, float32(w)*gs, acc); err != nil {
			return err
		}
		v, err := t.meanLoss()
		if err != nil {
			return err
		}
		m.KL = v
		m.Loss += w * v
		acc = true
	}
	if w := t.Losses.ReverseKL; w != 0 {
		if err := d.KLReverse(x, src, t.Teacher.logits, rows, V, t.Losses.tau(), float32(w)*gs, acc, t.rowLoss); err != nil {
			return err
		}
		v, err := t.meanLoss()
		if err != nil {
			return err
		}
		m.RKL = v
		m.Loss += w * v
	}
	return nil
}

// normBack: dx (overwritten or accumulated), and the weight (and bias)
// gradients of a norm over x.
func (t *Trainer) normBack(dx, dy, x, mean, rstd cuda.Buf, w, b string, accumulate bool) error {
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

// wgrad writes dW [out, in] = dy[:, off:off+out]ᵀ·x, dy of row stride ldy
// (dyb and xb: their bf16 copies, used in bf16 mode).
func (t *Trainer) wgrad(name string, dy cuda.Buf, dyb cuda.BF16, off, ldy, out int, x cuda.Buf, xb cuda.BF16, in int) error {
	s := t.S
	if s.bf16 {
		return s.d.GemmBF16(true, false, out, in, s.Batch*s.Seq, 1, dyb.Off(off), ldy, xb, in, 0, t.gradOf(name), in)
	}
	return s.d.Sgemm(true, false, out, in, s.Batch*s.Seq, 1, dy.Off(off), ldy, x, in, 0, t.gradOf(name), in)
}

// dgrad writes (or adds) dx [rows, in] = dy[:, off:off+out]·W.
func (t *Trainer) dgrad(dx cuda.Buf, dy cuda.Buf, dyb cuda.BF16, off, ldy, out int, name string, in int, accumulate bool) error {
	s := t.S
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	if s.bf16 {
		return s.d.GemmBF16(false, false, s.Batch*s.Seq, in, out, 1, dyb.Off(off), ldy, s.PB(name), in, beta, dx, in)
	}
	return s.d.Sgemm(false, false, s.Batch*s.Seq, in, out, 1, dy.Off(off), ldy, s.P(name), in, beta, dx, in)
}

func (t *Trainer) backward() error {
	s := t.S
	d := s.d
	c := s.Cfg
	rows, H, F, V, L := s.Batch*s.Seq, c.HiddenSize, c.IntermediateSize, c.VocabSize, c.NumLayers
	QD, KVD := c.QDim(), c.KVDim()
	W := QD + 2*KVD
	head := "lm_head.weight"
	if c.TieWordEmbeddings {
		head = "model.embed_tokens.weight"
	}
	G := s.logits // holds dLoss/dlogits
	if err := firstErr(
		s.toB(t.Gb, G),
		t.wgrad(head, G, t.Gb, 0, V, V, s.hf, s.hfb, H),
		t.dgrad(t.dh, G, t.Gb, 0, V, V, head, H, false),
		t.is.addGrad(d, L, t.dh),
		t.normBack(t.g, t.dh, s.xs[L], s.meanf, s.rstdf, "model.norm.weight", "model.norm.bias", false)); err != nil {
		return fmt.Errorf("backward through the head: %w", err)
	}
	dims := s.dims()
	rot := c.RotaryDim()
	for l := L - 1; l >= 0; l-- {
		p := model.LayerPrefix(l)
		h1b, attb, h2b, ab := bAt(s.h1b, l), bAt(s.attb, l), bAt(s.h2b, l), bAt(s.ab, l)
		// MLP: xs[l+1] = xmid + a·Wdᵀ
		err := firstErr(
			s.toB(t.gb, t.g),
			t.wgrad(p+"mlp.down_proj.weight", t.g, t.gb, 0, H, H, s.a[l], ab, F),
			t.dgrad(t.da, t.g, t.gb, 0, H, H, p+"mlp.down_proj.weight", F, false))
		if err == nil {
			if c.GatedMLP() {
				err = firstErr(
					d.BackwardGated(s.act, t.du, t.du.Off(F), t.da, s.u[l], s.u[l].Off(F), rows, F, 2*F),
					s.toB(t.dub, t.du),
					t.wgrad(p+"mlp.gate_proj.weight", t.du, t.dub, 0, 2*F, F, s.h2[l], h2b, H),
					t.wgrad(p+"mlp.up_proj.weight", t.du, t.dub, F, 2*F, F, s.h2[l], h2b, H),
					t.dgrad(t.dh, t.du, t.dub, 0, 2*F, F, p+"mlp.gate_proj.weight", H, false),
					t.dgrad(t.dh, t.du, t.dub, F, 2*F, F, p+"mlp.up_proj.weight", H, true))
			} else {
				err = firstErr(
					d.ActivationBackward(s.act, t.du, t.da, s.u[l]),
					s.toB(t.dub, t.du),
					t.wgrad(p+"mlp.up_proj.weight", t.du, t.dub, 0, F, F, s.h2[l], h2b, H),
					t.dgrad(t.dh, t.du, t.dub, 0, F, F, p+"mlp.up_proj.weight", H, false))
			}
		}
		if err == nil {
			err = t.normBack(t.g, t.dh, s.xmid[l], s.mean2[l], s.rstd2[l], p+"post_attention_layernorm.weight", p+"post_attention_layernorm.bias", true)
		}
		if err != nil {
			return fmt.Errorf("backward through layer %d's MLP: %w", l, err)
		}
		// attention: xmid = xs[l] + att·Woᵀ
		q := s.qkv[l]
		attnBack := d.AttentionBackward
		if s.AttnTC {
			attnBack = d.AttentionBackwardTC
		}
		err = firstErr(
			s.toB(t.gb, t.g),
			t.wgrad(p+"self_attn.o_proj.weight", t.g, t.gb, 0, H, H, s.att[l], attb, QD),
			t.dgrad(t.datt, t.g, t.gb, 0, H, H, p+"self_attn.o_proj.weight", QD, false),
			attnBack(t.dqkv, t.dqkv.Off(QD), t.dqkv.Off(QD+KVD), t.datt, q, q.Off(QD), q.Off(QD+KVD), s.probs[l], dims, W, W, W))
		if err == nil && rot > 0 {
			// RoPE is a rotation: its backward is the inverse rotation.
			err = firstErr(
				d.ApplyRope(t.dqkv, rows, W, c.NumHeads, c.HeadDim, rot, s.pos, s.cos, s.sin, true),
				d.ApplyRope(t.dqkv.Off(QD), rows, W, c.NumKVHeads, c.HeadDim, rot, s.pos, s.cos, s.sin, true))
		}
		if err == nil {
			err = firstErr(
				s.toB(t.dqkvb, t.dqkv),
				t.wgrad(p+"self_attn.q_proj.weight", t.dqkv, t.dqkvb, 0, W, QD, s.h1[l], h1b, H),
				t.wgrad(p+"self_attn.k_proj.weight", t.dqkv, t.dqkvb, QD, W, KVD, s.h1[l], h1b, H),
				t.wgrad(p+"self_attn.v_proj.weight", t.dqkv, t.dqkvb, QD+KVD, W, KVD, s.h1[l], h1b, H),
				t.dgrad(t.dh, t.dqkv, t.dqkvb, 0, W, QD, p+"self_attn.q_proj.weight", H, false),
				t.dgrad(t.dh, t.dqkv, t.dqkvb, QD, W, KVD, p+"self_attn.k_proj.weight", H, true),
				t.dgrad(t.dh, t.dqkv, t.dqkvb, QD+KVD, W, KVD, p+"self_attn.v_proj.weight", H, true),
				t.is.addGrad(d, l, t.dh),
				t.normBack(t.g, t.dh, s.xs[l], s.mean1[l], s.rstd1[l], p+"input_layernorm.weight", p+"input_layernorm.bias", true))
		}
		if err != nil {
			return fmt.Errorf("backward through layer %d's attention: %w", l, err)
		}
	}
	emb := t.gradOf("model.embed_tokens.weight")
	if !c.TieWordEmbeddings {
		if err := d.Zero(emb); err != nil {
			return err
		}
	}
	// tied: the head's gradient is already in emb; the lookup's adds to it
	return d.EmbeddingBackward(emb, t.g, s.ids, rows, H)
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
