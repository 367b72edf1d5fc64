package distill

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The op constructors below each add one coarse fused op to the graph and
// define its backward ops. Rows are the B·T tokens of a micro-batch.

// gemm splits a product over the workers along C's longer side (see
// kernels.ParSgemmRows).
func gemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m >= n {
		kernels.ParSgemmRows(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	kernels.ParSgemm(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

// linearNode computes y = x·[W1;…;Wk]ᵀ (+ [b1|…|bk]), the outputs of k
// weights sharing an input concatenated along columns (q|k|v, gate|up), so
// the input has one consumer and its gradient needs no gorgonia Add. bs is
// nil or holds each weight's bias, nil where it has none; a bias's
// gradient is the column sum of its block of the output's gradient.
func linearNode(name string, x *G.Node, rows, in int, ws, bs []*G.Node, outs []int) (*G.Node, error) {
	total := 0
	offs := make([]int, len(outs))
	for i, o := range outs {
		offs[i] = total
		total += o
	}
	// bias[i] is weight i's bias input (an index into the op's inputs), or
	// 0 when it has none
	bias := make([]int, len(ws))
	nodes := append(G.Nodes{x}, ws...)
	for i, b := range bs {
		if b != nil {
			bias[i] = len(nodes)
			nodes = append(nodes, b)
		}
	}
	fw := newOp(name, len(nodes), rows, total)
	y := fw.data()
	fw.do = func(v []G.Value) (float32, error) {
		xd := f32(v[0])
		for i := range ws {
			gemm(false, true, rows, outs[i], in, xd, in, f32(v[1+i]), in, 0, y[offs[i]:], total)
			if bias[i] > 0 {
				kernels.AddBiasLd(y[offs[i]:], f32(v[bias[i]]), rows, total)
			}
		}
		return 0, nil
	}
	fw.diffWRT = make([]bool, len(nodes))
	for i := range fw.diffWRT {
		fw.diffWRT[i] = true
	}
	fw.diff = func(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		gx := newOp(name+".dx", 1+len(ws), rows, in)
		dx := gx.data()
		gx.do = func(v []G.Value) (float32, error) {
			dy := f32(v[0])
			for i := range ws {
				beta := float32(1)
				if i == 0 {
					beta = 0
				}
				gemm(false, false, rows, in, outs[i], dy[offs[i]:], total, f32(v[1+i]), in, beta, dx, in)
			}
			return 0, nil
		}
		res := make(G.Nodes, len(nodes))
		var err error
		if res[0], err = apply(gx, append(G.Nodes{grad}, inputs[1:1+len(ws)]...)...); err != nil {
			return nil, err
		}
		for i := range ws {
			i := i
			gw := newOp(fmt.Sprintf("%s.dW%d", name, i), 2, outs[i], in)
			dw := gw.data()
			gw.do = func(v []G.Value) (float32, error) {
				gemm(true, false, outs[i], in, rows, f32(v[0])[offs[i]:], total, f32(v[1]), in, 0, dw, in)
				return 0, nil
			}
			if res[1+i], err = apply(gw, grad, inputs[0]); err != nil {
				return nil, err
			}
			if bias[i] == 0 {
				continue
			}
			gb := newOp(fmt.Sprintf("%s.db%d", name, i), 1, outs[i])
			db := gb.data()
			gb.do = func(v []G.Value) (float32, error) {
				kernels.ColSumLd(db, f32(v[0])[offs[i]:], rows, outs[i], total)
				return 0, nil
			}
			if res[bias[i]], err = apply(gb, grad); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	return apply(fw, nodes...)
}

// normNode is LayerNorm1P (bias b may be nil) or RMSNorm (rms set, b nil).
// The forward saves each row's statistics for the backward op, which
// computes dx, dw and db in one kernel call; dw/db are exposed as the
// outputs of two more ops that only order after it.
func normNode(name string, x, w, b *G.Node, rows, dim int, eps float32, rms bool) (*G.Node, error) {
	arity := 2
	if b != nil {
		arity = 3
	}
	fw := newOp(name, arity, rows, dim)
	y := fw.data()
	mean, rstd := make([]float32, rows), make([]float32, rows)
	fw.do = func(v []G.Value) (float32, error) {
		if rms {
			kernels.RMSNormStats(y, rstd, f32(v[0]), f32(v[1]), rows, dim, eps)
			return 0, nil
		}
		var bd []float32
		if b != nil {
			bd = f32(v[2])
		}
		kernels.LayerNorm1PStats(y, mean, rstd, f32(v[0]), f32(v[1]), bd, rows, dim, eps)
		return 0, nil
	}
	fw.diffWRT = []bool{true, true, true}[:arity]
	fw.diff = func(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		gx := newOp(name+".dx", 3, rows, dim)
		gw := newOp(name+".dw", 1, dim)
		var gb *kop
		var dbBuf []float32
		if b != nil {
			gb = newOp(name+".db", 1, dim)
			dbBuf = gb.data()
			gb.do = func([]G.Value) (float32, error) { return 0, nil }
		}
		dx, dw := gx.data(), gw.data()
		gx.do = func(v []G.Value) (float32, error) {
			dy, xd, wd := f32(v[0]), f32(v[1]), f32(v[2])
			if rms {
				kernels.RMSNormBackward(dx, dw, dy, xd, wd, rstd, rows, dim, false)
			} else {
				kernels.LayerNorm1PBackward(dx, dw, dbBuf, dy, xd, wd, mean, rstd, rows, dim, false)
			}
			return 0, nil
		}
		gw.do = func([]G.Value) (float32, error) { return 0, nil }
		res := make(G.Nodes, arity)
		var err error
		if res[0], err = apply(gx, grad, inputs[0], inputs[1]); err != nil {
			return nil, err
		}
		if res[1], err = apply(gw, res[0]); err != nil {
			return nil, err
		}
		if b != nil {
			if res[2], err = apply(gb, res[0]); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	in := G.Nodes{x, w}
	if b != nil {
		in = append(in, b)
	}
	return apply(fw, in...)
}

// headNormNode is qwen3's q/k norm over the fused qkv [rows, ld]: RMSNorm
// with weight qw [dim] over each of the qHeads query heads (columns from
// 0) and with kw over each of the kvHeads key heads (from column kOff),
// the values passing through unchanged. The forward saves each head's
// rstd; the backward op reads the pre-norm qkv through its graph input and
// writes dqkv, and the weights' gradients, exposed as two more ops that
// only order after it, as normNode's.
func headNormNode(name string, qkv, qw, kw *G.Node, rows, ld, qHeads, kOff, kvHeads, dim int, eps float32) (*G.Node, error) {
	fw := newOp(name, 3, rows, ld)
	y := fw.data()
	rq, rk := make([]float32, rows*qHeads), make([]float32, rows*kvHeads)
	fw.do = func(v []G.Value) (float32, error) {
		copy(y, f32(v[0]))
		kernels.HeadRMSNorm(y, rq, f32(v[1]), rows, ld, 0, qHeads, dim, eps)
		kernels.HeadRMSNorm(y, rk, f32(v[2]), rows, ld, kOff, kvHeads, dim, eps)
		return 0, nil
	}
	fw.diffWRT = []bool{true, true, true}
	fw.diff = func(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		gx := newOp(name+".dx", 4, rows, ld)
		gq, gk := newOp(name+".dwq", 1, dim), newOp(name+".dwk", 1, dim)
		dx, dwq, dwk := gx.data(), gq.data(), gk.data()
		gx.do = func(v []G.Value) (float32, error) {
			dy, x := f32(v[0]), f32(v[1])
			copy(dx, dy) // the values' gradient; the heads' is overwritten
			kernels.HeadRMSNormBackward(dx, dwq, dy, x, f32(v[2]), rq, rows, ld, 0, qHeads, dim)
			kernels.HeadRMSNormBackward(dx, dwk, dy, x, f32(v[3]), rk, rows, ld, kOff, kvHeads, dim)
			return 0, nil
		}
		gq.do = func([]G.Value) (float32, error) { return 0, nil }
		gk.do = gq.do
		res := make(G.Nodes, 3)
		var err error
		if res[0], err = apply(gx, grad, inputs[0], inputs[1], inputs[2]); err != nil {
			return nil, err
		}
		if res[1], err = apply(gq, res[0]); err != nil {
			return nil, err
		}
		if res[2], err = apply(gk, res[0]); err != nil {
			return nil, err
		}
		return res, nil
	}
	return apply(fw, qkv, qw, kw)
}

// attnGeom is what the attention op needs beyond the tensors.
type attnGeom struct {
	batch, seq, heads, kvHeads, headDim, rot, window int
	pos                                              []int     // position of each row (r mod seq)
	cos, sin, negSin                                 []float32 // RoPE tables [seq, rot/2]
}

// attentionNode takes the fused qkv [rows, (nH+2·nKV)·hd] and returns the
// attention output [rows, nH·hd]: RoPE on q and k, scaled scores, causal (or
// sliding-window) mask, softmax and the product with v, for all heads and
// sequences in one op. The forward keeps the rotated q/k and the
// probabilities for the backward op.
func attentionNode(name string, qkv *G.Node, a *attnGeom) (*G.Node, error) {
	rows := a.batch * a.seq
	qd, kvd := a.heads*a.headDim, a.kvHeads*a.headDim
	W := qd + 2*kvd
	fw := newOp(name, 1, rows, qd)
	out := fw.data()
	rot := make([]float32, rows*W)
	probs := make([]float32, a.batch*a.heads*a.seq*a.seq)
	dims := kernels.AttnDims{Batch: a.batch, Heads: a.heads, KVHeads: a.kvHeads, HeadDim: a.headDim,
		Tq: a.seq, Tk: a.seq, Window: a.window, LdQ: W, LdK: W, LdV: W, LdO: qd}
	fw.do = func(v []G.Value) (float32, error) {
		copy(rot, f32(v[0]))
		if a.rot > 0 {
			kernels.ApplyRope(rot, rows, W, a.heads, a.headDim, a.rot, a.pos, a.cos, a.sin)
			kernels.ApplyRope(rot[qd:], rows, W, a.kvHeads, a.headDim, a.rot, a.pos, a.cos, a.sin)
		}
		kernels.Attention(out, rot, rot[qd:], rot[qd+kvd:], dims, probs)
		return 0, nil
	}
	fw.diffWRT = []bool{true}
	fw.diff = func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		gq := newOp(name+".dqkv", 1, rows, W)
		d := gq.data()
		scratch := make([]float32, 32*a.seq*kernels.Workers())
		gq.do = func(v []G.Value) (float32, error) {
			kernels.AttentionBackward(d, d[qd:], d[qd+kvd:], f32(v[0]), rot, rot[qd:], rot[qd+kvd:], probs, dims, W, W, W, scratch)
			if a.rot > 0 {
				// RoPE is a rotation: its backward is the inverse rotation.
				kernels.ApplyRope(d, rows, W, a.heads, a.headDim, a.rot, a.pos, a.cos, a.negSin)
				kernels.ApplyRope(d[qd:], rows, W, a.kvHeads, a.headDim, a.rot, a.pos, a.cos, a.negSin)
			}
			return 0, nil
		}
		n, err := apply(gq, grad)
		return G.Nodes{n}, err
	}
	return apply(fw, qkv)
}

// actNode is the MLP nonlinearity: act(u) for a plain MLP (u [rows, F]), or
// act(gate)·up for a gated one (u = [gate|up], [rows, 2F]).
func actNode(name string, u *G.Node, act kernels.Activation, gated bool, rows, F int) (*G.Node, error) {
	fw := newOp(name, 1, rows, F)
	y := fw.data()
	fw.do = func(v []G.Value) (float32, error) {
		x := f32(v[0])
		if gated {
			act.ApplyGated(y, x, x[F:], rows, F, 2*F)
		} else {
			act.Apply(y, x)
		}
		return 0, nil
	}
	fw.diffWRT = []bool{true}
	fw.diff = func(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		width := F
		if gated {
			width = 2 * F
		}
		g := newOp(name+".du", 2, rows, width)
		du := g.data()
		g.do = func(v []G.Value) (float32, error) {
			dy, x := f32(v[0]), f32(v[1])
			if gated {
				return 0, act.BackwardGated(du, du[F:], dy, x, x[F:], rows, F, 2*F)
			}
			return 0, act.Backward(du, dy, x)
		}
		n, err := apply(g, grad, inputs[0])
		return G.Nodes{n}, err
	}
	return apply(fw, u)
}

// residualNode is x + d. Its gradient is the incoming gradient for both
// inputs, so the backward costs nothing beyond gorgonia's one Add where the
// stream branches.
func residualNode(name string, x, d *G.Node, rows, dim int) (*G.Node, error) {
	fw := newOp(name, 2, rows, dim)
	y := fw.data()
	fw.do = func(v []G.Value) (float32, error) {
		a, b := f32(v[0]), f32(v[1])
		kernels.ParallelFor(len(y), 1<<14, func(lo, hi int) {
			ys, as, bs := y[lo:hi], a[lo:hi], b[lo:hi]
			for i := range ys {
				ys[i] = as[i] + bs[i]
			}
		})
		return 0, nil
	}
	fw.diffWRT = []bool{true, true}
	fw.diff = func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		return G.Nodes{grad, grad}, nil
	}
	return apply(fw, x, d)
}

// embeddingNode gathers the rows of table for the current micro-batch's ids
// (read from st at run time).
func embeddingNode(name string, table *G.Node, st *stepState, vocab, dim int) (*G.Node, error) {
	rows := len(st.ids)
	fw := newOp(name, 1, rows, dim)
	y := fw.data()
	fw.do = func(v []G.Value) (float32, error) {
		return 0, kernels.Embedding(y, f32(v[0]), st.ids, dim)
	}
	fw.diffWRT = []bool{true}
	fw.diff = func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		g := newOp(name+".dW", 1, vocab, dim)
		dw := g.data()
		g.do = func(v []G.Value) (float32, error) {
			clear(dw)
			kernels.EmbeddingBackward(dw, f32(v[0]), st.ids, dim)
			return 0, nil
		}
		n, err := apply(g, grad)
		return G.Nodes{n}, err
	}
	return apply(fw, table)
}

// lossNode reduces the logits [rows, vocab] to the scalar training loss
// (the weighted mix in st). The kernels compute the gradient with respect to
// the logits in the same pass, in place over the logits buffer buf (the
// logits op's output, which nothing reads afterwards), so the backward op
// only applies the incoming scale.
func lossNode(name string, logits *G.Node, buf []float32, st *stepState, rows, vocab int) (*G.Node, error) {
	fw := newOp(name, 1)
	fw.do = func(v []G.Value) (float32, error) {
		return st.computeLoss(f32(v[0]), rows, vocab)
	}
	fw.diffWRT = []bool{true}
	fw.diff = func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		g := newOp(name+".dlogits", 2)
		g.shape = []int{rows, vocab}
		g.scalar = nil
		g.out = tensor.New(tensor.WithBacking(buf), tensor.WithShape(rows, vocab))
		g.do = func(v []G.Value) (float32, error) {
			if s := scalarOf(v[1]); s != 1 {
				for i := range buf {
					buf[i] *= s
				}
			}
			return 0, nil
		}
		n, err := apply(g, output, grad)
		return G.Nodes{n}, err
	}
	return apply(fw, logits)
}
