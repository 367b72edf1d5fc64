package distill

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels"
)

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

	isTeacher [][]float32 // teacher hidden states per intermediate pair [rows, Ht]

	// parts are the last micro-batch's losses (means over its tokens): the
	// logit terms from computeLoss, the intermediate-state loss and α from
	// the graph's is_loss and loss_total ops.
	parts Parts
	terms []Term // the logit terms of the last computeLoss
}

// computeLoss evaluates the weighted loss over logits [rows, vocab] and, in
// training, leaves its gradient (scaled by gradScale) in logits.
func (st *stepState) computeLoss(x []float32, rows, vocab int) (float32, error) {
	l := st.losses
	terms := l.TrainTerms()
	if !st.train {
		terms = l.EvalTerms(st.topIdx != nil, st.teacher != nil)
	}
	st.terms = terms
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
	st.parts.CE, st.parts.KL, st.parts.RKL = 0, 0, 0 // the intermediate-state ops set IS and α
	tau := l.Tau()
	for i, t := range terms {
		dst, acc := x, i > 0
		if !st.train {
			dst, acc = st.scratch, false
		}
		scale := float32(t.Weight) * st.gradScale
		switch t.Kind {
		case TermCE:
			kernels.SoftmaxCrossEntropy(dst, src, st.targets, rows, vocab, scale, acc, st.rowLoss)
		case TermKL:
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
		case TermRKL:
			if st.teacher == nil {
				return 0, fmt.Errorf("reverse KL loss without teacher logits")
			}
			kernels.KLReverse(dst, src, st.teacher, rows, vocab, tau, scale, acc, st.rowLoss)
		}
		st.parts.Set(t.Kind, st.meanRowLoss(t.Kind == TermCE))
	}
	return MixLogits(terms, st.parts), nil
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
