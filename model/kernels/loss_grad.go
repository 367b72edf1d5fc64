package kernels

import "math"

// Fused loss kernels over logits [rows, n]: each computes the per-row loss
// and the gradient with respect to the logits in one pass, so a training
// graph's backward through the loss is only a scale. grad may alias the
// student logits when accumulate is false (each row is read fully before it
// is written). The gradient is multiplied by scale (e.g. 1/rows for a mean
// and the loss weight).

// SoftmaxCrossEntropy stores rowLoss[r] = logsumexp(x_r) − x_r[target[r]]
// and grad = scale·(softmax(x_r) − onehot(target)). A negative target
// ignores the row (loss 0, gradient 0).
func SoftmaxCrossEntropy(grad, logits []float32, targets []int, rows, n int, scale float32, accumulate bool, rowLoss []float32) {
	ParallelFor(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x, g := logits[r*n:(r+1)*n], grad[r*n:(r+1)*n]
			t := targets[r]
			if t < 0 {
				rowLoss[r] = 0
				if !accumulate {
					clear(g)
				}
				continue
			}
			xt := x[t]
			var m float32
			var s float64
			if accumulate {
				m = rowMax(x)
				var s32 float32
				for _, v := range x {
					s32 += Exp32(v - m)
				}
				inv := scale / s32
				for i, v := range x {
					g[i] += Exp32(v-m) * inv
				}
				s = float64(s32)
			} else {
				// One exp per logit, written over x when aliased (x[t] is
				// kept above).
				m, s = softmaxScaled(g, x, scale)
			}
			rowLoss[r] = m + float32(math.Log(s)) - xt
			g[t] -= scale
		}
	})
}

// KLForward is distillation's forward KL(teacher‖student) at temperature
// tau: p = softmax(teacher/τ), q = softmax(student/τ), rowLoss[r] =
// τ²·Σ p·(log p − log q) (the τ² keeps gradient sizes comparable across
// temperatures, as in Hinton et al.) and grad = scale·τ·(q − p).
func KLForward(grad, student, teacher []float32, rows, n int, tau, scale float32, accumulate bool, rowLoss []float32) {
	it := 1 / tau
	ParallelFor(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, t, g := student[r*n:(r+1)*n], teacher[r*n:(r+1)*n], grad[r*n:(r+1)*n]
			ls, lt := pairLogZ(s, t, it)
			// KL = Σ p (log p − log q), log p = t/τ − lt, log q = s/τ − ls
			var kl float64
			c := scale * tau
			for i := range s {
				lp, lq := t[i]*it-lt, s[i]*it-ls
				p, q := Exp32(lp), Exp32(lq)
				kl += float64(p * (lp - lq))
				if accumulate {
					g[i] += c * (q - p)
				} else {
					g[i] = c * (q - p)
				}
			}
			rowLoss[r] = float32(kl) * tau * tau
		}
	})
}

// KLReverse is the reverse KL(student‖teacher) at temperature tau:
// rowLoss[r] = τ²·Σ q·(log q − log p) and its gradient
// grad_j = scale·τ·q_j·(log q_j − log p_j − KL/τ²).
func KLReverse(grad, student, teacher []float32, rows, n int, tau, scale float32, accumulate bool, rowLoss []float32) {
	it := 1 / tau
	ParallelFor(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, t, g := student[r*n:(r+1)*n], teacher[r*n:(r+1)*n], grad[r*n:(r+1)*n]
			ls, lt := pairLogZ(s, t, it)
			var kl float64
			for i := range s {
				lq := s[i]*it - ls
				kl += float64(Exp32(lq) * (lq - (t[i]*it - lt)))
			}
			k := float32(kl)
			c := scale * tau
			for i := range s {
				lq := s[i]*it - ls
				v := c * Exp32(lq) * (lq - (t[i]*it - lt) - k)
				if accumulate {
					g[i] += v
				} else {
					g[i] = v
				}
			}
			rowLoss[r] = k * tau * tau
		}
	})
}

// KLForwardTopK is forward KL against a teacher given only its top-k
// logits per row (idx [rows, k] into the vocabulary, val [rows, k]): the
// teacher distribution is the softmax over those k entries (zero
// elsewhere). rowLoss[r] = τ²·Σ_top p·(log p − log q) and grad = scale·τ·(q − p).
func KLForwardTopK(grad, student []float32, idx []int32, val []float32, k, rows, n int, tau, scale float32, accumulate bool, rowLoss []float32) {
	it := 1 / tau
	ParallelFor(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s, g := student[r*n:(r+1)*n], grad[r*n:(r+1)*n]
			ix, tv := idx[r*k:(r+1)*k], val[r*k:(r+1)*k]
			ms, mt := rowMax(s)*it, rowMax(tv)*it
			var zs, zt float32
			for _, v := range s {
				zs += Exp32(v*it - ms)
			}
			for _, v := range tv {
				zt += Exp32(v*it - mt)
			}
			ls, lt := ms+float32(math.Log(float64(zs))), mt+float32(math.Log(float64(zt)))
			// The KL reads the student logits before the gradient (which
			// may alias them) is written.
			var kl float64
			for j, id := range ix {
				lp := tv[j]*it - lt
				kl += float64(Exp32(lp) * (lp - (s[id]*it - ls)))
			}
			c := scale * tau
			for i, v := range s {
				q := Exp32(v*it - ls)
				if accumulate {
					g[i] += c * q
				} else {
					g[i] = c * q
				}
			}
			for j, id := range ix {
				g[id] -= c * Exp32(tv[j]*it-lt)
			}
			rowLoss[r] = float32(kl) * tau * tau
		}
	})
}

// TopK writes, for each row of x [rows, n], the indices and values of its k
// largest entries (in descending order) into idx and val [rows, k].
func TopK(idx []int32, val []float32, x []float32, rows, n, k int) {
	ParallelFor(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*n : (r+1)*n]
			ix, vv := idx[r*k:(r+1)*k], val[r*k:(r+1)*k]
			m := 0 // entries filled, kept sorted descending (insertion; k is small)
			for i, v := range xr {
				if m == k && v <= vv[k-1] {
					continue
				}
				j := m
				if m < k {
					m++
				} else {
					j = k - 1
				}
				for j > 0 && vv[j-1] < v {
					vv[j], ix[j] = vv[j-1], ix[j-1]
					j--
				}
				vv[j], ix[j] = v, int32(i)
			}
		}
	})
}

// pairLogZ is the log-partition log Σ exp(x·it) of a student and a teacher
// row, the normaliser both KL directions need.
func pairLogZ(s, t []float32, it float32) (ls, lt float32) {
	ms, mt := rowMax(s)*it, rowMax(t)*it
	var zs, zt float32
	for i := range s {
		zs += Exp32(s[i]*it - ms)
		zt += Exp32(t[i]*it - mt)
	}
	return ms + float32(math.Log(float64(zs))), mt + float32(math.Log(float64(zt)))
}
