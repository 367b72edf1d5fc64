package kernels

import "fmt"

// ActivationBackward writes dx = dy·act'(x) elementwise (the non-gated MLP,
// e.g. Nemotron's relu²). dx may alias dy.
func (a Activation) Backward(dx, dy, x []float32) error {
	switch a {
	case ReLU2, ReLU, SiLU:
	default:
		return fmt.Errorf("kernels: no backward for activation %v", a)
	}
	ParallelFor(len(x), elemChunk, func(lo, hi int) {
		xs, gs, ds := x[lo:hi], dy[lo:hi], dx[lo:hi]
		switch a {
		// max instead of a branch: signs of pre-activations are random,
		// and a mispredicted branch per element costs ~10× the arithmetic.
		case ReLU2:
			if relu2BackwardVec(ds, gs, xs) {
				return
			}
			gs, ds = gs[:len(xs)], ds[:len(xs)]
			for i, v := range xs {
				ds[i] = gs[i] * 2 * max(v, 0)
			}
		case ReLU:
			gs, ds = gs[:len(xs)], ds[:len(xs)]
			for i, v := range xs {
				d := float32(0)
				if v > 0 {
					d = gs[i]
				}
				ds[i] = d
			}
		case SiLU:
			for i, v := range xs {
				s := 1 / (1 + Exp32(-v))
				ds[i] = gs[i] * s * (1 + v*(1-s))
			}
		}
	})
	return nil
}

// BackwardGated is the backward of ApplyGated (out = act(gate)·up): given
// dout [rows, n] it writes dgate and dup into the [rows, ld] views (first n
// columns; for a fused [gate|up] buffer pass the same slice offset by n for
// up, as in the forward).
func (a Activation) BackwardGated(dgate, dup, dout, gate, up []float32, rows, n, ld int) error {
	if a != SiLU && a != ReLU2 && a != ReLU {
		return fmt.Errorf("kernels: no gated backward for activation %v", a)
	}
	ParallelFor(rows, max(1, elemChunk/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, u, o := gate[r*ld:r*ld+n], up[r*ld:r*ld+n], dout[r*n:(r+1)*n]
			dg, du := dgate[r*ld:r*ld+n], dup[r*ld:r*ld+n]
			for i, v := range g {
				switch a {
				case SiLU:
					s := 1 / (1 + Exp32(-v))
					du[i] = o[i] * v * s
					dg[i] = o[i] * u[i] * s * (1 + v*(1-s))
				case ReLU2:
					if v > 0 {
						du[i] = o[i] * v * v
						dg[i] = o[i] * u[i] * 2 * v
					} else {
						du[i], dg[i] = 0, 0
					}
				case ReLU:
					if v > 0 {
						du[i] = o[i] * v
						dg[i] = o[i] * u[i]
					} else {
						du[i], dg[i] = 0, 0
					}
				}
			}
		}
	})
	return nil
}

// EmbeddingBackward adds the rows of dy [len(ids), dim] into dtable at the
// rows ids name (a scatter-add; repeated ids accumulate). Ids were checked
// by the forward Embedding.
func EmbeddingBackward(dtable, dy []float32, ids []int, dim int) {
	// Workers own disjoint column blocks, so repeated ids never race.
	colReduce(dim, func(c0, c1 int) {
		for i, id := range ids {
			d := dtable[id*dim+c0 : id*dim+c1]
			for j, v := range dy[i*dim+c0 : i*dim+c1] {
				d[j] += v
			}
		}
	})
}
