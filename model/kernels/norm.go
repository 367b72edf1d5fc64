package kernels

import "math"

// normChunk is the row count below which norms stay on one goroutine.
const normChunk = 16

// LayerNorm1P writes out = (x-mean)/sqrt(var+eps)·(w+1)+b for each of rows
// rows of dim values (Nemotron's LayerNorm1P; var is the biased variance).
// b may be nil (no bias). out may alias x.
func LayerNorm1P(out, x, w, b []float32, rows, dim int, eps float32) {
	LayerNorm1PStats(out, nil, nil, x, w, b, rows, dim, eps)
}

// LayerNorm1PStats is LayerNorm1P that also stores each row's mean and
// rstd = 1/sqrt(var+eps) (either may be nil), which the backward pass needs.
func LayerNorm1PStats(out, mean, rstd, x, w, b []float32, rows, dim int, eps float32) {
	ParallelFor(rows, normChunk, func(lo, hi int) {
		var ml, rl []float32
		if mean != nil {
			ml = mean[lo:hi]
		}
		if rstd != nil {
			rl = rstd[lo:hi]
		}
		if layerNorm1PVec(out[lo*dim:], ml, rl, x[lo*dim:], w, b, hi-lo, dim, eps) {
			return
		}
		for r := lo; r < hi; r++ {
			xr := x[r*dim : (r+1)*dim]
			or := out[r*dim : (r+1)*dim]
			var s float64
			for _, v := range xr {
				s += float64(v)
			}
			mu := s / float64(dim)
			var ss float64
			for _, v := range xr {
				d := float64(v) - mu
				ss += d * d
			}
			rs := float32(1 / math.Sqrt(ss/float64(dim)+float64(eps)))
			m := float32(mu)
			if mean != nil {
				mean[r] = m
			}
			if rstd != nil {
				rstd[r] = rs
			}
			if b != nil {
				for i, v := range xr {
					or[i] = (v-m)*rs*(w[i]+1) + b[i]
				}
			} else {
				for i, v := range xr {
					or[i] = (v - m) * rs * (w[i] + 1)
				}
			}
		}
	})
}

// RMSNorm writes out = x·rsqrt(mean(x²)+eps)·w per row (Llama's RMSNorm).
// out may alias x.
func RMSNorm(out, x, w []float32, rows, dim int, eps float32) {
	RMSNormStats(out, nil, x, w, rows, dim, eps)
}

// RMSNormStats is RMSNorm that also stores each row's rstd =
// rsqrt(mean(x²)+eps) when rstd is non-nil.
func RMSNormStats(out, rstd, x, w []float32, rows, dim int, eps float32) {
	ParallelFor(rows, normChunk, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rs := rmsNormVec(out[r*dim:(r+1)*dim], x[r*dim:(r+1)*dim], w, eps)
			if rstd != nil {
				rstd[r] = rs
			}
		}
	})
}

// HeadRMSNorm normalises, in place, heads vectors of dim per row that start
// at column off of x [rows, ld]: qwen3's q_norm/k_norm, an RMSNorm with
// weight w [dim] over every query or key head before RoPE. rstd, when
// non-nil, receives each vector's rsqrt(mean(x²)+eps) [rows·heads].
func HeadRMSNorm(x, rstd, w []float32, rows, ld, off, heads, dim int, eps float32) {
	ParallelFor(rows*heads, max(normChunk, 4096/max(dim, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r, h := i/heads, i%heads
			v := x[r*ld+off+h*dim : r*ld+off+(h+1)*dim]
			rs := rmsNormVec(v, v, w, eps)
			if rstd != nil {
				rstd[i] = rs
			}
		}
	})
}

// rmsNormVec writes out = x·rs·w for one vector (out may alias x) and
// returns rs = rsqrt(mean(x²)+eps), the sum taken in float64.
func rmsNormVec(out, x, w []float32, eps float32) float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	rs := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		out[i] = w[i] * (v * rs)
	}
	return rs
}
