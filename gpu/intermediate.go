//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// isLoss is the intermediate-state loss on the device, distill's
// isLossNode and combineNode: L = L_logits + α·L_is with L_is the mean over
// pairs and rows of 1 − cos(h_s·Wᵀ, h_t), one learned projection W [Ht, Hs]
// shared by the pairs, and α = L_logits/L_is held constant for the
// gradient. W is trained with the student (AdamW, decayed like any matrix)
// but lives outside the model's arena: it is not part of the checkpoint.
type isLoss struct {
	pairs      []distill.LayerPair
	hs, ht     int
	w, g       cuda.Buf // W [Ht, Hs] and its gradient summed over a step's micro-batches
	m1, m2     cuda.Buf // AdamW moments
	teach      []cuda.Buf
	proj, loss cuda.Buf
	dy, dh     []cuda.Buf // per pair: ∂(1−cos)/∂(h_s·Wᵀ) unscaled [rows, Ht]; the scaled ∂L/∂h_s [rows, Hs]
	host       []float32
}

// newISLoss allocates the loss's buffers and uploads the projection's
// initial value from src (distill.ISProjName).
func (t *Engine) newISLoss(pairs []distill.LayerPair, src model.TensorSource) error {
	s, tc := t.S, t.Teacher
	if tc == nil {
		return fmt.Errorf("gpu: the intermediate-state loss needs a teacher")
	}
	if err := distill.CheckPairs(pairs, s.Cfg, tc.Cfg); err != nil {
		return err
	}
	rows := s.Batch * s.Seq
	l := &isLoss{pairs: pairs, hs: s.Cfg.HiddenSize, ht: tc.Cfg.HiddenSize, host: make([]float32, rows)}
	var err error
	one := func(n int) cuda.Buf {
		if err != nil {
			return cuda.Buf{}
		}
		var b cuda.Buf
		if b, err = t.alloc(n); err == nil {
			err = s.d.Zero(b)
		}
		return b
	}
	l.w, l.g, l.m1, l.m2 = one(l.ht*l.hs), one(l.ht*l.hs), one(l.ht*l.hs), one(l.ht*l.hs)
	l.proj, l.loss = one(rows*l.ht), one(rows)
	for range pairs {
		l.teach = append(l.teach, one(rows*l.ht))
		l.dy = append(l.dy, one(rows*l.ht))
		l.dh = append(l.dh, one(rows*l.hs))
	}
	if err != nil {
		return err
	}
	t.is = l
	w := make([]float32, l.ht*l.hs)
	if err := src.ReadF32(distill.ISProjName, w); err != nil {
		return fmt.Errorf("gpu: intermediate projection: %w", err)
	}
	return s.d.CopyFrom(l.w, w)
}

// teacherForward runs the teacher on its batch, keeping the paired hidden
// states (input_layernorm outputs; the final norm's stays in hf).
func (t *Engine) teacherForward() error {
	tc := t.Teacher
	if t.is == nil {
		return tc.Forward()
	}
	capture := func(l int, x cuda.Buf, _, _ int) error {
		for i, p := range t.is.pairs {
			if p.Teacher == l {
				if err := tc.d.CopyBuf(t.is.teach[i], x); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := tc.Infer(&InferOptions{Hooks: &Hooks{AttnNorm: capture}}); err != nil {
		return err
	}
	for i, p := range t.is.pairs {
		if p.Teacher == tc.Cfg.NumLayers {
			if err := tc.d.CopyBuf(t.is.teach[i], tc.hf); err != nil {
				return err
			}
		}
	}
	return nil
}

// studentState is the student's hidden state k (kept by the training
// forward pass; in the bf16 layout widened from layer k's bf16 copy into
// the shared norm output, which the backward pass does not read).
func (s *Model) studentState(k int) (cuda.Buf, error) {
	if k == s.Cfg.NumLayers {
		return s.hf, nil
	}
	if s.packed {
		return s.h1[0], s.d.FromBF16(s.h1[0], s.h1b[k])
	}
	return s.h1[k], nil
}

// forward computes L_is for the micro-batch just run and the weight α
// from the logit loss mix of terms in p (distill.ISWeight); p gets IS and
// ISAlpha. It leaves ∂(1−cos)/∂(h_s·Wᵀ) in dy for backward.
func (l *isLoss) forward(s *Model, p *distill.Parts, terms []distill.Term) error {
	d := s.d
	rows := s.Batch * s.Seq
	P := len(l.pairs)
	var total float64
	for i, p := range l.pairs {
		h, err := s.studentState(p.Student)
		err = firstErr(err,
			d.Sgemm(false, true, rows, l.ht, l.hs, 1, h, l.hs, l.w, l.hs, 0, l.proj, l.ht),
			d.CosineLoss(l.dy[i], l.loss, l.proj, l.teach[i], rows, l.ht),
			d.Download(l.host, l.loss))
		if err != nil {
			return fmt.Errorf("intermediate-state loss, pair %d→%d: %w", p.Student, p.Teacher, err)
		}
		for _, v := range l.host {
			total += float64(v)
		}
	}
	is := total / float64(rows*P)
	p.IS = is
	p.ISAlpha = float64(distill.ISWeight(distill.MixLogits(terms, *p), float32(is)))
	return nil
}

// backward computes, at weight alpha, the scaled gradients with respect to
// the student's states (dh, added in the model's backward pass by addGrad)
// and the projection's gradient (summed into g; first says it is the
// step's first micro-batch).
func (l *isLoss) backward(s *Model, alpha float64, accum int, first bool) error {
	d := s.d
	rows := s.Batch * s.Seq
	P := len(l.pairs)
	scale := float32(alpha / float64(rows*P*accum))
	for i, p := range l.pairs {
		beta := float32(1)
		if first && i == 0 {
			beta = 0
		}
		h, err := s.studentState(p.Student)
		err = firstErr(err,
			d.Sgemm(false, false, rows, l.hs, l.ht, scale, l.dy[i], l.ht, l.w, l.hs, 0, l.dh[i], l.hs),
			d.Sgemm(true, false, l.ht, l.hs, rows, scale, l.dy[i], l.ht, h, l.hs, beta, l.g, l.hs))
		if err != nil {
			return fmt.Errorf("intermediate-state loss gradient, pair %d→%d: %w", p.Student, p.Teacher, err)
		}
	}
	return nil
}

// addGrad adds ∂L_is/∂h_k into dh, the gradient with respect to the
// student's hidden state k, before the backward pass goes through its norm.
func (l *isLoss) addGrad(d *cuda.Device, k int, dh cuda.Buf) error {
	if l == nil {
		return nil
	}
	for i, p := range l.pairs {
		if p.Student == k {
			if err := d.Add(dh, l.dh[i]); err != nil {
				return err
			}
		}
	}
	return nil
}
