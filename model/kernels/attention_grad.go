package kernels

import "math"

// AttentionBackward is the backward pass of Attention for training (Tq ==
// Tk, no KV cache): given dout and the forward's q, k, v (after RoPE) and
// probs, it writes dq (overwritten), and dk, dv (overwritten; the query
// heads of a GQA group add into their shared KV head). dq/dk/dv use the row
// strides ldDQ/ldDK/ldDV (a fused dQKV buffer passes its full width), the
// forward tensors the strides in d. scratch needs 32·Tk floats per worker
// (Workers()); nil allocates.
func AttentionBackward(dq, dk, dv, dout, q, k, v, probs []float32, d AttnDims, ldDQ, ldDK, ldDV int, scratch []float32) {
	if err := d.fill(); err != nil {
		panic(err)
	}
	if d.Tq != d.Tk || d.KSeqRows != d.Tk {
		panic("kernels: AttentionBackward needs Tq == Tk and packed sequences")
	}
	T, hd := d.Tq, d.HeadDim
	group := d.Heads / d.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	per := attnChunk * T
	if len(scratch) < per*Workers() {
		scratch = make([]float32, per*Workers())
	}
	// One task per (sequence, KV head): the group's query heads run in turn
	// so dk/dv accumulate without races. Query rows go in blocks of
	// attnChunk (as in the forward) so the products skip the keys after
	// the block, which the causal mask hides: about half the work of full
	// T×T products. Keys before a sliding window are zero in P and cost
	// only their share of the block products.
	parallelTasks(d.Batch*d.KVHeads, func(w, t int) {
		b, g := t/d.KVHeads, t%d.KVHeads
		dp := scratch[w*per : w*per+attnChunk*T]
		row0 := b * T
		ko, vo := row0*d.LdK+g*hd, row0*d.LdV+g*hd
		dko, dvo := row0*ldDK+g*hd, row0*ldDV+g*hd
		for r := 0; r < T; r++ {
			clear(dk[dko+r*ldDK : dko+r*ldDK+hd])
			clear(dv[dvo+r*ldDV : dvo+r*ldDV+hd])
		}
		for j := 0; j < group; j++ {
			h := g*group + j
			p := probs[(b*d.Heads+h)*T*T:][:T*T]
			qo, oo, dqo := row0*d.LdQ+h*hd, row0*d.LdO+h*hd, row0*ldDQ+h*hd
			for i0 := 0; i0 < T; i0 += attnChunk {
				i1 := min(T, i0+attnChunk)
				rows, n := i1-i0, i1 // keys [0, i1) cover every visible key of the block
				pc := p[i0*T:]       // rows of P, stride T
				// dV[0:n] += P_blockᵀ·dO_block
				Sgemm(true, false, n, hd, rows, 1, pc, T, dout[oo+i0*d.LdO:], d.LdO, 1, dv[dvo:], ldDV)
				// dP = dO_block·V[0:n]ᵀ
				Sgemm(false, true, rows, n, hd, 1, dout[oo+i0*d.LdO:], d.LdO, v[vo:], d.LdV, 0, dp, n)
				// dS = P ⊙ (dP − Σ dP·P), times the score scale
				if !attnDSVec(pc, T, dp, n, rows, i0, scale) {
					for r := 0; r < rows; r++ {
						pr, dr := pc[r*T:r*T+n], dp[r*n:(r+1)*n]
						hi := i0 + r + 1 // causal: keys beyond the query have P = 0
						var s float32
						for c := 0; c < hi; c++ {
							s += pr[c] * dr[c]
						}
						for c := 0; c < hi; c++ {
							dr[c] = pr[c] * (dr[c] - s) * scale
						}
						clear(dr[hi:])
					}
				}
				// dQ_block = dS·K[0:n] ; dK[0:n] += dSᵀ·Q_block
				Sgemm(false, false, rows, hd, n, 1, dp, n, k[ko:], d.LdK, 0, dq[dqo+i0*ldDQ:], ldDQ)
				Sgemm(true, false, n, hd, rows, 1, dp, n, q[qo+i0*d.LdQ:], d.LdQ, 1, dk[dko:], ldDK)
			}
		}
	})
}
