package distill

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels"
	G "gorgonia.org/gorgonia"
)

// isLossNode is the intermediate-state loss: mean over pairs and rows of
// 1 − cos(h_s·Wᵀ, h_t), with one shared projection W [Ht, Hs]. The teacher
// states come from st.isTeacher at run time.
func isLossNode(hs []*G.Node, w *G.Node, st *stepState, rows, hsDim, htDim int) (*G.Node, error) {
	P := len(hs)
	fw := newOp("is_loss", P+1)
	proj := make([]float32, rows*htDim) // h_s·Wᵀ of the pair at hand
	loss := make([]float32, rows)
	dy := make([][]float32, P) // ∂(1−cos)/∂(h_s·Wᵀ) per pair, unscaled, kept for the backward
	for i := range dy {
		dy[i] = make([]float32, rows*htDim)
	}
	fw.do = func(v []G.Value) (float32, error) {
		wd := f32(v[P])
		var total float64
		for p := 0; p < P; p++ {
			kernels.ParMatMulT(proj, f32(v[p]), wd, rows, htDim, hsDim, false)
			kernels.CosineLoss(dy[p], loss, proj, st.isTeacher[p], rows, htDim)
			for _, l := range loss {
				total += float64(l)
			}
		}
		l := total / float64(rows*P)
		st.parts.IS = l
		return float32(l), nil
	}
	fw.diffWRT = make([]bool, P+1)
	for i := range fw.diffWRT {
		fw.diffWRT[i] = true
	}
	fw.diff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		// One op computes every gradient; the others only expose its
		// buffers (ordered after it by taking its output as input).
		bw := newOp("is_loss.dh0", P+3, rows, hsDim)
		dh := make([][]float32, P)
		dh[0] = bw.data()
		ext := make([]*kop, P+1)
		for p := 1; p < P; p++ {
			ext[p] = newOp(fmt.Sprintf("is_loss.dh%d", p), 1, rows, hsDim)
			dh[p] = ext[p].data()
		}
		ext[P] = newOp("is_loss.dW", 1, htDim, hsDim)
		dW := ext[P].data()
		for _, e := range ext[1:] {
			e.do = func([]G.Value) (float32, error) { return 0, nil }
		}
		bw.do = func(v []G.Value) (float32, error) {
			scale := scalarOf(v[0]) * st.gradScale * float32(rows) / float32(rows*P)
			wd := f32(v[P+2])
			for p := 0; p < P; p++ {
				hsd := f32(v[2+p])
				beta := float32(1)
				if p == 0 {
					beta = 0
				}
				kernels.ParSgemm(false, false, rows, hsDim, htDim, scale, dy[p], htDim, wd, hsDim, 0, dh[p], hsDim)
				kernels.ParSgemm(true, false, htDim, hsDim, rows, scale, dy[p], htDim, hsd, hsDim, beta, dW, hsDim)
			}
			return 0, nil
		}
		in := append(G.Nodes{grad, output}, inputs...)
		first, err := apply(bw, in...)
		if err != nil {
			return nil, err
		}
		res := make(G.Nodes, P+1)
		res[0] = first
		for p := 1; p <= P; p++ {
			if res[p], err = apply(ext[p], first); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	return apply(fw, append(append(G.Nodes{}, hs...), w)...)
}

// combineNode is L = L_logits + α·L_is with α = L_logits/L_is recomputed
// every micro-step and held constant for the gradient (the paper's dynamic
// weighting: both terms contribute equally).
func combineNode(logits, is *G.Node, st *stepState) (*G.Node, error) {
	fw := newOp("loss_total", 2)
	var alpha float32
	fw.do = func(v []G.Value) (float32, error) {
		a, b := scalarOf(v[0]), scalarOf(v[1])
		alpha = ISWeight(a, b)
		st.parts.ISAlpha = float64(alpha)
		return Mix(st.terms, st.parts), nil
	}
	fw.diffWRT = []bool{true, true}
	fw.diff = func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		ga := newOp("loss_total.dl", 2)
		ga.do = func(v []G.Value) (float32, error) { return scalarOf(v[1]), nil }
		gb := newOp("loss_total.dis", 2)
		gb.do = func(v []G.Value) (float32, error) { return alpha * scalarOf(v[1]), nil }
		na, err := apply(ga, output, grad)
		if err != nil {
			return nil, err
		}
		nb, err := apply(gb, output, grad)
		return G.Nodes{na, nb}, err
	}
	return apply(fw, logits, is)
}
