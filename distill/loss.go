package distill

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model/kernels"
)

// Losses weights the logit losses of a training step. Any weighted mix is
// allowed; plain training is CE = 1, the paper's distillation KL = 1.
type Losses struct {
	CE          float64 `yaml:"ce" json:"ce"`                   // cross-entropy on the next-token labels
	KL          float64 `yaml:"kl" json:"kl"`                   // forward KL(teacher‖student)
	ReverseKL   float64 `yaml:"reverse_kl" json:"reverse_kl"`   // KL(student‖teacher)
	Temperature float64 `yaml:"temperature" json:"temperature"` // τ for both KLs; 0 means 1
	TopK        int     `yaml:"top_k" json:"top_k"`             // >0: forward KL on the teacher's top-k logits only

	// Intermediate adds the cosine loss on these (student, teacher)
	// post-norm hidden-state pairs through one shared learned projection,
	// weighted dynamically (α = L_logits/L_is).
	Intermediate []LayerPair `yaml:"intermediate" json:"intermediate,omitempty"`
	// TeacherHidden is the teacher's hidden size (the projection's output);
	// Run sets it from the teacher.
	TeacherHidden int `yaml:"-" json:"-"`
}

func (l Losses) tau() float32 {
	if l.Temperature <= 0 {
		return 1
	}
	return float32(l.Temperature)
}

// NeedsTeacher reports whether any weighted loss reads teacher logits.
func (l Losses) NeedsTeacher() bool { return l.KL != 0 || l.ReverseKL != 0 || len(l.Intermediate) > 0 }

func (l Losses) validate() error {
	if l.CE < 0 || l.KL < 0 || l.ReverseKL < 0 {
		return fmt.Errorf("loss weights must be ≥ 0 (ce %g, kl %g, reverse_kl %g)", l.CE, l.KL, l.ReverseKL)
	}
	if l.CE == 0 && l.KL == 0 && l.ReverseKL == 0 {
		return fmt.Errorf("no loss selected: set a positive weight for ce, kl or reverse_kl")
	}
	if l.TopK < 0 {
		return fmt.Errorf("top_k must be ≥ 0, got %d", l.TopK)
	}
	if l.TopK > 0 && l.ReverseKL != 0 {
		return fmt.Errorf("reverse KL needs the full teacher distribution; it cannot be combined with top_k")
	}
	return nil
}

// stepState is what the loss op (and the embedding op) read at run time:
// the micro-batch's tokens and targets, the teacher's logits, and the loss
// values the op leaves behind for the metrics.
type stepState struct {
	ids, targets []int
	losses       Losses
	gradScale    float32 // 1/(tokens in the global batch)
	train        bool

	teacher []float32 // [rows, vocab] full teacher logits, or nil
	topIdx  []int32   // [rows, k] when losses.TopK > 0
	topVal  []float32

	rowLoss []float32
	mix     []float32 // copy of the logits when several terms read them
	scratch []float32 // gradient sink for evaluation

	isTeacher   [][]float32 // teacher hidden states per intermediate pair [rows, Ht]
	is, isAlpha float64     // last intermediate loss and its weight α

	// Results of the last computeLoss (means over the micro-batch).
	ce, kl, rkl float64
	hasCE       bool
	hasKL       bool
	hasRKL      bool
}

type lossTerm struct {
	kind   int // 0 ce, 1 kl, 2 reverse kl
	weight float64
}

// computeLoss evaluates the weighted loss over logits [rows, vocab] and, in
// training, leaves its gradient (scaled by gradScale) in logits.
func (st *stepState) computeLoss(x []float32, rows, vocab int) (float32, error) {
	l := st.losses
	var terms []lossTerm
	if st.train {
		if l.CE != 0 {
			terms = append(terms, lossTerm{0, l.CE})
		}
		if l.KL != 0 {
			terms = append(terms, lossTerm{1, l.KL})
		}
		if l.ReverseKL != 0 {
			terms = append(terms, lossTerm{2, l.ReverseKL})
		}
	} else {
		// Evaluation reports the LM loss always, and the KLs when a teacher
		// is there, whatever their weights.
		terms = append(terms, lossTerm{0, l.CE})
		if st.teacher != nil || st.topIdx != nil {
			terms = append(terms, lossTerm{1, l.KL})
		}
		if st.teacher != nil {
			terms = append(terms, lossTerm{2, l.ReverseKL})
		}
	}
	src := x
	if st.train && len(terms) > 1 {
		if st.mix == nil {
			st.mix = make([]float32, len(x))
		}
		copy(st.mix, x)
		src = st.mix
	}
	if !st.train {
		if st.scratch == nil {
			st.scratch = make([]float32, len(x))
		}
	}
	st.hasCE, st.hasKL, st.hasRKL = false, false, false
	tau := l.tau()
	var total float64
	for i, t := range terms {
		dst, acc := x, i > 0
		if !st.train {
			dst, acc = st.scratch, false
		}
		scale := float32(t.weight) * st.gradScale
		switch t.kind {
		case 0:
			kernels.SoftmaxCrossEntropy(dst, src, st.targets, rows, vocab, scale, acc, st.rowLoss)
		case 1:
			if l.TopK > 0 {
				if st.topIdx == nil {
					return 0, fmt.Errorf("top-k KL without teacher top-k logits")
				}
				kernels.KLForwardTopK(dst, src, st.topIdx, st.topVal, l.TopK, rows, vocab, tau, scale, acc, st.rowLoss)
			} else {
				if st.teacher == nil {
					return 0, fmt.Errorf("KL loss without teacher logits")
				}
				kernels.KLForward(dst, src, st.teacher, rows, vocab, tau, scale, acc, st.rowLoss)
			}
		case 2:
			if st.teacher == nil {
				return 0, fmt.Errorf("reverse KL loss without teacher logits")
			}
			kernels.KLReverse(dst, src, st.teacher, rows, vocab, tau, scale, acc, st.rowLoss)
		}
		m := st.meanRowLoss(t.kind == 0)
		switch t.kind {
		case 0:
			st.ce, st.hasCE = m, true
		case 1:
			st.kl, st.hasKL = m, true
		case 2:
			st.rkl, st.hasRKL = m, true
		}
		total += t.weight * m
	}
	if math.IsNaN(total) || math.IsInf(total, 0) {
		return float32(total), nil // the loop names the step
	}
	return float32(total), nil
}

// meanRowLoss averages rowLoss over the rows that count (targets ≥ 0 for CE).
func (st *stepState) meanRowLoss(masked bool) float64 {
	var s float64
	n := 0
	for r, v := range st.rowLoss {
		if masked && st.targets[r] < 0 {
			continue
		}
		s += float64(v)
		n++
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// NeedsFullTeacher reports whether a loss needs the teacher's full logits
// (not only its top-k).
func (l Losses) NeedsFullTeacher() bool {
	return l.ReverseKL != 0 || (l.KL != 0 && l.TopK == 0) || len(l.Intermediate) > 0
}
