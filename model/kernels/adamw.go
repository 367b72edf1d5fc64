package kernels

import "math"

// AdamWStep applies one AdamW update to a run of parameters w with gradient
// g and moments m, v (all the same length), in float32:
//
//	m ← b1·m + (1−b1)·g;  v ← b2·v + (1−b2)·g²
//	w ← w·decay − step·m / (√v·rbc2 + eps)
//
// where decay = 1 − lr·weight_decay (1 for undecayed parameters), step =
// lr/(1−b1^t) and rbc2 = 1/√(1−b2^t). The vector path does the same
// operations in the same order, so results are identical.
func AdamWStep(w, g, m, v []float32, b1, b2, decay, step, rbc2, eps float32) {
	if adamWVec(w, g, m, v, b1, b2, decay, step, rbc2, eps) {
		return
	}
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for j := range w {
		gj := g[j]
		mj := b1*m[j] + (1-b1)*gj
		vj := b2*v[j] + (1-b2)*gj*gj
		m[j], v[j] = mj, vj
		w[j] = w[j]*decay - step*mj/(float32(math.Sqrt(float64(vj)))*rbc2+eps)
	}
}

// AdamWScalars are one update's scalars for one tensor, as AdamWStep takes
// them (the training core computes them once per step: distill.Optim).
type AdamWScalars struct {
	B1, B2, Decay, Step, RBC2, Eps float32
}

// Apply is AdamWStep with s's scalars.
func (s AdamWScalars) Apply(w, g, m, v []float32) {
	AdamWStep(w, g, m, v, s.B1, s.B2, s.Decay, s.Step, s.RBC2, s.Eps)
}
