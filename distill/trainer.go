package distill

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// Trainer runs optimizer steps on a Student: per step, Accum micro-batches
// (teacher forward when a loss needs it, student forward and backward,
// gradient accumulation), global-norm clipping and an AdamW update at the
// scheduled learning rate.
type Trainer struct {
	S       *Student
	Opt     *AdamW
	Sched   Schedule
	Accum   int     // micro-batches per optimizer step
	Clip    float64 // max global grad norm; 0 = no clipping
	Teacher *model.Model
	// TopKCache, when set, supplies the teacher's top-k logits of a
	// micro-batch instead of running the teacher (see TopKCache).
	TopKCache *TopKCache

	Step int // optimizer steps done

	offs  []int
	acc   []float32 // gradient accumulation arena (Accum > 1)
	grads [][]float32
	ids   [][]int
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

// NewTrainer wires a trainer; teacher may be nil when no loss needs it.
func NewTrainer(s *Student, opt *AdamW, sched Schedule, accum int, clip float64, teacher *model.Model) (*Trainer, error) {
	if accum < 1 {
		return nil, fmt.Errorf("gradient accumulation steps must be ≥ 1, got %d", accum)
	}
	if s.st.losses.NeedsTeacher() && teacher == nil {
		return nil, fmt.Errorf("the loss needs a teacher (kl %g, reverse_kl %g) but none was given", s.st.losses.KL, s.st.losses.ReverseKL)
	}
	if teacher != nil && teacher.Cfg.VocabSize != s.Cfg.VocabSize {
		return nil, fmt.Errorf("teacher vocabulary (%d) differs from the student's (%d): logit distillation needs the same tokenizer", teacher.Cfg.VocabSize, s.Cfg.VocabSize)
	}
	tr := &Trainer{S: s, Opt: opt, Sched: sched, Accum: accum, Clip: clip, Teacher: teacher}
	off := 0
	for _, p := range s.Params {
		tr.offs = append(tr.offs, off)
		off += len(p.Data)
	}
	if accum > 1 && s.vm != nil { // a weights-only Student never steps here
		tr.acc = make([]float32, off)
	}
	tr.grads = make([][]float32, len(s.Params))
	s.st.gradScale = 1 / float32(s.Batch*s.Seq*accum)
	tr.ids = make([][]int, s.Batch)
	for b := range tr.ids {
		tr.ids[b] = make([]int, s.Seq)
	}
	return tr, nil
}

// teacherLogits fills the step state's teacher logits for a micro-batch.
func (tr *Trainer) teacherLogits(tokens [][]int32) error {
	st := tr.S.st
	if !st.losses.NeedsTeacher() && tr.Teacher == nil {
		return nil
	}
	if tr.TopKCache != nil && st.losses.TopK > 0 && !st.losses.NeedsFullTeacher() {
		idx, val, ok, err := tr.TopKCache.Lookup(tokens)
		if err != nil {
			return err
		}
		if ok {
			st.topIdx, st.topVal, st.teacher = idx, val, nil
			return nil
		}
	}
	for b, row := range tokens {
		for t := 0; t < tr.S.Seq; t++ {
			tr.ids[b][t] = int(row[t])
		}
	}
	var fo *model.ForwardOptions
	if pairs := st.losses.Intermediate; len(pairs) > 0 {
		// Capture the paired teacher states: input_layernorm outputs and
		// the final norm (layer = NumLayers).
		capture := func(layer, _, _ int, x []float32) {
			for i, p := range pairs {
				if p.Teacher == layer {
					copy(st.isTeacher[i], x)
				}
			}
		}
		fo = &model.ForwardOptions{Hooks: &model.Hooks{AttnNorm: capture, FinalNorm: capture}}
	}
	logits, err := tr.Teacher.Forward(tr.ids, fo)
	if err != nil {
		return fmt.Errorf("teacher forward: %w", err)
	}
	st.teacher = logits
	if k := st.losses.TopK; k > 0 {
		rows := tr.S.Batch * tr.S.Seq
		if len(st.topIdx) != rows*k {
			st.topIdx, st.topVal = make([]int32, rows*k), make([]float32, rows*k)
		}
		kernels.TopK(st.topIdx, st.topVal, logits, rows, tr.S.Cfg.VocabSize, k)
		if tr.TopKCache != nil {
			if err := tr.TopKCache.Store(tokens, st.topIdx, st.topVal); err != nil {
				return err
			}
		}
	}
	return nil
}

// TrainStep runs one optimizer step over micro (Accum micro-batches of
// [Batch][Seq+1] tokens). A non-finite loss returns an error naming the step
// unless skipNonFinite is set, in which case the update is skipped.
func (tr *Trainer) TrainStep(micro [][][]int32, skipNonFinite bool) (StepMetrics, error) {
	if len(micro) != tr.Accum {
		return StepMetrics{}, fmt.Errorf("step needs %d micro-batches, got %d", tr.Accum, len(micro))
	}
	s := tr.S
	m := StepMetrics{Step: tr.Step + 1, LR: tr.Sched.At(tr.Step)}
	for i, mb := range micro {
		if err := tr.teacherLogits(mb); err != nil {
			return m, err
		}
		loss, err := s.trainStep(mb)
		if err != nil {
			return m, fmt.Errorf("step %d: %w", m.Step, err)
		}
		m.Loss += float64(loss) / float64(tr.Accum)
		m.CE += s.st.ce / float64(tr.Accum)
		m.KL += s.st.kl / float64(tr.Accum)
		m.RKL += s.st.rkl / float64(tr.Accum)
		m.IS += s.st.is / float64(tr.Accum)
		m.ISAlpha += s.st.isAlpha / float64(tr.Accum)
		if tr.Accum == 1 {
			for j, p := range s.Params {
				tr.grads[j] = p.Grad()
			}
			continue
		}
		for j, p := range s.Params {
			a := tr.acc[tr.offs[j] : tr.offs[j]+len(p.Data)]
			g := p.Grad()
			if i == 0 {
				copy(a, g)
			} else {
				kernels.Add(a, g)
			}
			tr.grads[j] = a
		}
	}
	if math.IsNaN(m.Loss) || math.IsInf(m.Loss, 0) {
		if !skipNonFinite {
			return m, fmt.Errorf("step %d: loss is %v (use --skip-nonfinite to skip such steps)", m.Step, m.Loss)
		}
		m.Skipped = true
		tr.Step++
		return m, nil
	}
	m.GradNorm = ClipGrads(tr.grads, tr.Clip)
	if math.IsNaN(m.GradNorm) || math.IsInf(m.GradNorm, 0) {
		if !skipNonFinite {
			return m, fmt.Errorf("step %d: gradient norm is %v (use --skip-nonfinite to skip such steps)", m.Step, m.GradNorm)
		}
		m.Skipped = true
		tr.Step++
		return m, nil
	}
	tr.Opt.Update(s.Params, tr.grads, tr.offs, m.LR)
	tr.Step++
	return m, nil
}

// Evaluate returns the mean metrics of the forward pass over batches (no
// update): the LM loss (CE) always, and the KLs when there is a teacher.
func (tr *Trainer) Evaluate(batches [][][]int32) (StepMetrics, error) {
	var m StepMetrics
	if len(batches) == 0 {
		return m, fmt.Errorf("no validation batches")
	}
	for _, mb := range batches {
		if tr.Teacher != nil {
			if err := tr.teacherLogits(mb); err != nil {
				return m, err
			}
		}
		loss, err := tr.S.evalStep(mb)
		if err != nil {
			return m, err
		}
		n := float64(len(batches))
		m.Loss += float64(loss) / n
		m.CE += tr.S.st.ce / n
		m.KL += tr.S.st.kl / n
		m.RKL += tr.S.st.rkl / n
	}
	return m, nil
}
