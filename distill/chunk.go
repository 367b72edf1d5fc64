package distill

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// headLossNode is the head and the loss fused over chunks of rows
// (EngineConfig.LogitChunk): for each chunk of st.chunk rows of the final
// norm's output h [rows, H], its logits h_c·Wᵀ [chunk, V] (and the
// teacher's, from its final norm's output), the loss terms over them, and
// in training their gradient taken back through the head at once: dW sums
// the chunks' Gᵀ·h_c, dh gets each chunk's G·W. Only one chunk of logits of
// each model exists at a time. The backward ops hand out dh and dW, scaled
// by the incoming gradient.
func headLossNode(name string, h, w *G.Node, st *stepState, rows, H, V int) (*G.Node, error) {
	C := st.chunk
	logits := make([]float32, C*V)
	dh := make([]float32, rows*H)
	dw := make([]float32, V*H)
	fw := newOp(name, 2)
	fw.do = func(v []G.Value) (float32, error) {
		hd, wd := f32(v[0]), f32(v[1])
		terms := st.startTerms()
		sums := make([]float64, len(terms))
		for r0 := 0; r0 < rows; r0 += C {
			n := min(C, rows-r0)
			x := logits[:n*V]
			gemm(false, true, n, V, H, hd[r0*H:], H, wd, H, 0, x, V)
			var teacher []float32
			// validation reports the reverse KL whenever the teacher ran
			if st.teacherH != nil && (st.losses.NeedsFullTeacher() || !st.train) {
				teacher = st.tchunk[:n*V]
				ht := len(st.teacherH) / rows
				if err := st.teacherHead(teacher, st.teacherH[r0*ht:(r0+n)*ht], n); err != nil {
					return 0, fmt.Errorf("teacher logits: %w", err)
				}
			}
			if err := st.termsOn(terms, x, r0, n, V, teacher, sums); err != nil {
				return 0, err
			}
			if !st.train {
				continue
			}
			beta := float32(1)
			if r0 == 0 {
				beta = 0
			}
			gemm(true, false, V, H, n, x, V, hd[r0*H:], H, beta, dw, H)
			gemm(false, false, n, H, V, x, V, wd, H, 0, dh[r0*H:], H)
		}
		return st.finishTerms(terms, sums), nil
	}
	fw.diffWRT = []bool{true, true}
	fw.diff = func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		out := func(suffix string, buf []float32, shape ...int) (*G.Node, error) {
			g := newOp(name+suffix, 2)
			g.shape = shape
			g.scalar = nil
			g.out = tensor.New(tensor.WithBacking(buf), tensor.WithShape(shape...))
			g.do = func(v []G.Value) (float32, error) {
				if s := scalarOf(v[1]); s != 1 {
					for i := range buf {
						buf[i] *= s
					}
				}
				return 0, nil
			}
			return apply(g, output, grad)
		}
		gh, err := out(".dh", dh, rows, H)
		if err != nil {
			return nil, err
		}
		gw, err := out(".dW", dw, V, H)
		return G.Nodes{gh, gw}, err
	}
	return apply(fw, h, w)
}

// teacherChunked runs the teacher to its final norm (the hidden states the
// intermediate-state loss pairs captured by fo's hooks) and leaves what the
// chunked losses read: the final norm's output for the full-logit terms,
// and the top-k of its logits chunk by chunk (Losses.TopK).
func (st *stepState) teacherChunked(teacher *model.Model, ids [][]int, fo *model.ForwardOptions, rows, vocab int) error {
	o := model.ForwardOptions{Output: model.Hidden}
	if fo != nil {
		o.Hooks = fo.Hooks
	}
	hidden, err := teacher.Forward(ids, &o)
	if err != nil {
		return fmt.Errorf("teacher forward: %w", err)
	}
	st.teacher, st.teacherH, st.teacherHead = nil, hidden, teacher.HeadRows
	C := st.chunk
	if len(st.tchunk) < C*vocab {
		st.tchunk = make([]float32, C*vocab)
	}
	k := st.losses.TopK
	if k <= 0 {
		return nil
	}
	if len(st.topIdx) != rows*k {
		st.topIdx, st.topVal = make([]int32, rows*k), make([]float32, rows*k)
	}
	ht := len(hidden) / rows
	for r0 := 0; r0 < rows; r0 += C {
		n := min(C, rows-r0)
		x := st.tchunk[:n*vocab]
		if err := teacher.HeadRows(x, hidden[r0*ht:(r0+n)*ht], n); err != nil {
			return fmt.Errorf("teacher logits: %w", err)
		}
		kernels.TopK(st.topIdx[r0*k:(r0+n)*k], st.topVal[r0*k:(r0+n)*k], x, n, vocab, k)
	}
	return nil
}
