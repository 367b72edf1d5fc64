//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// teacherTopK selects the teacher's top-k logits per row (Losses.TopK > 0)
// into topIdx and topVal: on the device (cuda.Device.TopK, kernels.TopK's
// result exactly), or, for a k beyond what its shared-memory sort holds, on
// the host with kernels.TopK (the teacher's logits go down once per
// micro-batch).
func (t *Trainer) teacherTopK() error {
	k := t.Losses.TopK
	if k <= 0 || t.Teacher == nil {
		return nil
	}
	s, d := t.S, t.S.d
	rows, V := s.Batch*s.Seq, s.Cfg.VocabSize
	if k <= d.MaxTopK() {
		return d.TopK(t.topIdx, t.topVal, t.Teacher.logits, rows, V, k)
	}
	if t.hostT == nil {
		t.hostT, t.hostVal, t.hostIdx = make([]float32, rows*V), make([]float32, rows*k), make([]int32, rows*k)
	}
	if err := d.Download(t.hostT, t.Teacher.logits); err != nil {
		return err
	}
	kernels.TopK(t.hostIdx, t.hostVal, t.hostT, rows, V, k)
	if err := d.CopyFromInt32(t.topIdx, t.hostIdx); err != nil {
		return err
	}
	return d.CopyFrom(t.topVal, t.hostVal)
}

// klForward is the forward KL term: over the teacher's top-k logits when
// Losses.TopK > 0, else over all of them.
func (t *Trainer) klForward(grad, student cuda.Buf, scale float32, acc bool) error {
	s, d := t.S, t.S.d
	rows, V := s.Batch*s.Seq, s.Cfg.VocabSize
	if k := t.Losses.TopK; k > 0 {
		return d.KLForwardTopK(grad, student, t.topIdx, t.topVal, k, rows, V, t.Losses.tau(), scale, acc, t.rowLoss)
	}
	return d.KLForward(grad, student, t.Teacher.logits, rows, V, t.Losses.tau(), scale, acc, t.rowLoss)
}

// NonFiniteError is a step whose loss or gradient norm is not finite. It
// is returned before the update: weights, moments and Step are unchanged,
// so a caller may skip the step (distill's --skip-nonfinite).
type NonFiniteError struct {
	Step  int
	What  string // "loss" or "gradient norm"
	Value float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("step %d: %s is %v", e.Step, e.What, e.Value)
}

// window returns tensor name's window of an arena in the parameter layout.
func (m *Model) window(arena cuda.Buf, name string, n int) (cuda.Buf, error) {
	i, ok := m.byName[name]
	if !ok {
		return cuda.Buf{}, fmt.Errorf("gpu: no tensor %q on the device", name)
	}
	p := m.params[i]
	if n != p.n {
		return cuda.Buf{}, fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", name, p.n, n)
	}
	return arena.Slice(p.off, p.off+p.n), nil
}

// ReadParam downloads tensor name's current weights into dst (for
// checkpoints written from the host).
func (m *Model) ReadParam(name string, dst []float32) error {
	i, ok := m.byName[name]
	if !ok {
		return fmt.Errorf("gpu: no tensor %q on the device", name)
	}
	return m.downloadParam(m.params[i], dst)
}

// ReadMoments downloads tensor name's AdamW first and second moments.
func (t *Trainer) ReadMoments(name string, m1, m2 []float32) error {
	a, b, err := t.moments(name, len(m1), len(m2))
	if err != nil {
		return err
	}
	return firstErr(t.S.d.Download(m1, a), t.S.d.Download(m2, b))
}

// WriteMoments uploads tensor name's AdamW moments (resuming a run; set
// Step to the optimizer's step count too).
func (t *Trainer) WriteMoments(name string, m1, m2 []float32) error {
	a, b, err := t.moments(name, len(m1), len(m2))
	if err != nil {
		return err
	}
	return firstErr(t.S.d.CopyFrom(a, m1), t.S.d.CopyFrom(b, m2))
}

// moments are tensor name's windows of the two moment arenas, checked
// against the host slices' lengths.
func (t *Trainer) moments(name string, n1, n2 int) (a, b cuda.Buf, err error) {
	if a, err = t.S.window(t.mom1, name, n1); err != nil {
		return
	}
	b, err = t.S.window(t.mom2, name, n2)
	return
}

// Evaluate runs the forward pass on tokens [Batch][Seq+1] without an
// update and returns the mean CE and, when the trainer has a teacher, the
// mean forward KL at the trainer's temperature (distill.Trainer.Evaluate's
// metrics). The loss kernels accumulate a zero-weighted gradient, which
// leaves the logits as they are, so both losses read the same logits.
func (t *Trainer) Evaluate(tokens [][]int32) (ce, kl float64, err error) {
	s, d := t.S, t.S.d
	rows, V := s.Batch*s.Seq, s.Cfg.VocabSize
	if err := s.SetBatch(tokens); err != nil {
		return 0, 0, err
	}
	if t.Teacher != nil {
		if err := t.Teacher.SetBatch(tokens); err != nil {
			return 0, 0, err
		}
		if err := t.Teacher.Forward(); err != nil {
			return 0, 0, fmt.Errorf("teacher forward: %w", err)
		}
		if err := t.teacherTopK(); err != nil {
			return 0, 0, err
		}
	}
	if err := s.Forward(); err != nil {
		return 0, 0, fmt.Errorf("student forward: %w", err)
	}
	if err := d.SoftmaxCrossEntropy(s.logits, s.logits, s.targets, rows, V, 0, true, t.rowLoss); err != nil {
		return 0, 0, err
	}
	if ce, err = t.meanLoss(); err != nil {
		return 0, 0, err
	}
	if t.Teacher == nil {
		return ce, 0, nil
	}
	if err := t.klForward(s.logits, s.logits, 0, true); err != nil {
		return 0, 0, err
	}
	kl, err = t.meanLoss()
	return ce, kl, err
}
