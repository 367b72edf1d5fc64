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

	// chunked logits (EngineConfig.LogitChunk): chunk rows at a time; the
	// teacher's final-norm output teacherH [rows, Ht'] and its head
	// (teacherHead) give its logits chunk by chunk into tchunk
	chunk       int
	teacherH    []float32
	teacherHead func(logits, h []float32, rows int) error
	tchunk      []float32

	// parts are the last micro-batch's losses (means over its tokens): the
	// logit terms from computeLoss, the intermediate-state loss and α from
	// the graph's is_loss and loss_total ops.
	parts Parts
	terms []Term // the logit terms of the last computeLoss
}

// computeLoss evaluates the weighted loss over logits [rows, vocab] and, in
// training, leaves its gradient (scaled by gradScale) in logits.
func (st *stepState) computeLoss(x []float32, rows, vocab int) (float32, error) {
	terms := st.startTerms()
	sums := make([]float64, len(terms))
	if err := st.termsOn(terms, x, 0, rows, vocab, st.teacher, sums); err != nil {
		return 0, err
	}
	return st.finishTerms(terms, sums), nil
}

// startTerms are the terms of a training step or of a validation pass,
// with the logit parts cleared (the intermediate-state ops set IS and α).
func (st *stepState) startTerms() []Term {
	l := st.losses
	terms := l.TrainTerms()
	if !st.train {
		terms = l.EvalTerms(st.topIdx != nil, st.teacher != nil || st.teacherH != nil)
	}
	st.terms = terms
	st.parts.CE, st.parts.KL, st.parts.RKL = 0, 0, 0
	return terms
}

// termsOn runs the terms over rows [r0, r0+n), whose logits are x [n,
// vocab] (and the teacher's, teacher [n, vocab] or nil), adding each row's
// loss to sums[term] in row order (CE over the rows with a target); in
// training each term's gradient goes into x, the first overwriting it.
func (st *stepState) termsOn(terms []Term, x []float32, r0, n, vocab int, teacher []float32, sums []float64) error {
	l := st.losses
	src := x
	if st.train && len(terms) > 1 {
		if len(st.mix) < len(x) {
			st.mix = make([]float32, len(x))
		}
		src = st.mix[:len(x)]
		copy(src, x)
	}
	if !st.train && len(st.scratch) < len(x) {
		st.scratch = make([]float32, len(x))
	}
	tau := l.Tau()
	targets, rowLoss := st.targets[r0:r0+n], st.rowLoss[r0:r0+n]
	for i, t := range terms {
		dst, acc := x, i > 0
		if !st.train {
			dst, acc = st.scratch[:len(x)], false
		}
		scale := float32(t.Weight) * st.gradScale
		switch t.Kind {
		case TermCE:
			kernels.SoftmaxCrossEntropy(dst, src, targets, n, vocab, scale, acc, rowLoss)
		case TermKL:
			if l.TopK > 0 {
				if st.topIdx == nil {
					return fmt.Errorf("top-k KL without teacher top-k logits")
				}
				k := l.TopK
				kernels.KLForwardTopK(dst, src, st.topIdx[r0*k:(r0+n)*k], st.topVal[r0*k:(r0+n)*k], k, n, vocab, tau, scale, acc, rowLoss)
			} else {
				if teacher == nil {
					return fmt.Errorf("KL loss without teacher logits")
				}
				kernels.KLForward(dst, src, teacher, n, vocab, tau, scale, acc, rowLoss)
			}
		case TermRKL:
			if teacher == nil {
				return fmt.Errorf("reverse KL loss without teacher logits")
			}
			kernels.KLReverse(dst, src, teacher, n, vocab, tau, scale, acc, rowLoss)
		}
		for r, v := range rowLoss {
			if t.Kind == TermCE && targets[r] < 0 {
				continue
			}
			sums[i] += float64(v)
		}
	}
	return nil
}

// finishTerms records each term's mean (its sum over the rows that count)
// in st.parts and returns the logit loss mix.
func (st *stepState) finishTerms(terms []Term, sums []float64) float32 {
	withTarget := 0
	for _, tg := range st.targets {
		if tg >= 0 {
			withTarget++
		}
	}
	for i, t := range terms {
		n := len(st.targets)
		if t.Kind == TermCE {
			n = withTarget
		}
		if n > 0 {
			st.parts.Set(t.Kind, sums[i]/float64(n))
		}
	}
	return MixLogits(terms, st.parts)
}
