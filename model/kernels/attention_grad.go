package kernels

import "math"

// AttentionBackward is the backward pass of Attention for training (Tq ==
// Tk, no KV cache): given dout and the forward's q, k, v (after RoPE) and
// probs, it writes dq (overwritten), and dk, dv (overwritten; the query
// heads of a GQA group add into their shared KV head). dq/dk/dv use the row
// strides ldDQ/ldDK/ldDV (a fused dQKV buffer passes its full width), the
// forward tensors the strides in d. scratch needs 2·Tq·Tk floats per worker
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
	per := 2 * T * T
	if len(scratch) < per*Workers() {
		scratch = make([]float32, per*Workers())
	}
	// One task per (sequence, KV head): the group's query heads run in turn
	// so dk/dv accumulate without races.
	parallelTasks(d.Batch*d.KVHeads, func(w, t int) {
		b, g := t/d.KVHeads, t%d.KVHeads
		dp := scratch[w*per : w*per+T*T]
		row0 := b * T
		ko, vo := row0*d.LdK+g*hd, row0*d.LdV+g*hd
		dko, dvo := row0*ldDK+g*hd, row0*ldDV+g*hd
		for j := 0; j < group; j++ {
			h := g*group + j
			p := probs[(b*d.Heads+h)*T*T:][:T*T]
			qo, oo, dqo := row0*d.LdQ+h*hd, row0*d.LdO+h*hd, row0*ldDQ+h*hd
			beta := float32(1)
			if j == 0 {
				beta = 0
			}
			// dV += Pᵀ·dO
			Sgemm(true, false, T, hd, T, 1, p, T, dout[oo:], d.LdO, beta, dv[dvo:], ldDV)
			// dP = dO·Vᵀ
			Sgemm(false, true, T, T, hd, 1, dout[oo:], d.LdO, v[vo:], d.LdV, 0, dp, T)
			// dS = P ⊙ (dP − Σ_j dP·P), times the score scale
			for i := 0; i < T; i++ {
				pr, dr := p[i*T:(i+1)*T], dp[i*T:(i+1)*T]
				hi := i + 1 // causal: keys beyond i have P = 0
				var s float32
				for c := 0; c < hi; c++ {
					s += pr[c] * dr[c]
				}
				for c := 0; c < hi; c++ {
					dr[c] = pr[c] * (dr[c] - s) * scale
				}
				clear(dr[hi:])
			}
			// dQ = dS·K ; dK += dSᵀ·Q
			Sgemm(false, false, T, hd, T, 1, dp, T, k[ko:], d.LdK, 0, dq[dqo:], ldDQ)
			Sgemm(true, false, T, hd, T, 1, dp, T, q[qo:], d.LdQ, beta, dk[dko:], ldDK)
		}
	})
}
