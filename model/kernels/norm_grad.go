package kernels

// Backward passes of the norms in norm.go. They take the per-row statistics
// that LayerNorm1PStats / RMSNormStats saved in the forward pass, so the
// forward definition used in training is exactly the inference one.

// LayerNorm1PBackward computes, for y = (x-mean)·rstd·(w+1)+b over rows rows
// of dim values: dx (overwritten, or accumulated into when accumulate is
// set), dw and db (overwritten; db may be nil when the norm has no bias).
// mean and rstd are the statistics LayerNorm1PStats stored.
func LayerNorm1PBackward(dx, dw, db, dy, x, w, mean, rstd []float32, rows, dim int, accumulate bool) {
	if dx != nil {
		ParallelFor(rows, normChunk, func(lo, hi int) {
			if layerNorm1PDxVec(dx[lo*dim:], dy[lo*dim:], x[lo*dim:], w, mean[lo:hi], rstd[lo:hi], hi-lo, dim, accumulate) {
				return
			}
			for r := lo; r < hi; r++ {
				xr, gr, dr := x[r*dim:(r+1)*dim], dy[r*dim:(r+1)*dim], dx[r*dim:(r+1)*dim]
				m, rs := mean[r], rstd[r]
				// dxhat = dy·(w+1); dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat))
				var s1, s2 float32
				for i, v := range xr {
					g := gr[i] * (w[i] + 1)
					s1 += g
					s2 += g * (v - m) * rs
				}
				s1 /= float32(dim)
				s2 /= float32(dim)
				if accumulate {
					for i, v := range xr {
						dr[i] += rs * (gr[i]*(w[i]+1) - s1 - (v-m)*rs*s2)
					}
				} else {
					for i, v := range xr {
						dr[i] = rs * (gr[i]*(w[i]+1) - s1 - (v-m)*rs*s2)
					}
				}
			}
		})
	}
	colReduce(dim, func(c0, c1 int) {
		if layerNorm1PDwVec(dw, db, dy, x, mean, rstd, rows, dim, c0, c1) {
			return
		}
		clear(dw[c0:c1])
		if db != nil {
			clear(db[c0:c1])
		}
		for r := 0; r < rows; r++ {
			m, rs := mean[r], rstd[r]
			xr, gr := x[r*dim+c0:r*dim+c1], dy[r*dim+c0:r*dim+c1]
			w := dw[c0:c1]
			for i, v := range xr {
				w[i] += gr[i] * (v - m) * rs
			}
			if db != nil {
				b := db[c0:c1]
				for i, g := range gr {
					b[i] += g
				}
			}
		}
	})
}

// RMSNormBackward computes, for y = x·rstd·w: dx (overwritten, or
// accumulated into when accumulate is set) and dw (overwritten). rstd is
// what RMSNormStats stored.
func RMSNormBackward(dx, dw, dy, x, w, rstd []float32, rows, dim int, accumulate bool) {
	if dx != nil {
		ParallelFor(rows, normChunk, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, gr, dr := x[r*dim:(r+1)*dim], dy[r*dim:(r+1)*dim], dx[r*dim:(r+1)*dim]
				rs := rstd[r]
				// dx = rstd·(dy·w) − x·rstd³·mean(dy·w·x)
				var s float32
				for i, v := range xr {
					s += gr[i] * w[i] * v
				}
				c := s / float32(dim) * rs * rs * rs
				if accumulate {
					for i, v := range xr {
						dr[i] += rs*gr[i]*w[i] - v*c
					}
				} else {
					for i, v := range xr {
						dr[i] = rs*gr[i]*w[i] - v*c
					}
				}
			}
		})
	}
	colReduce(dim, func(c0, c1 int) {
		clear(dw[c0:c1])
		for r := 0; r < rows; r++ {
			rs := rstd[r]
			xr, gr := x[r*dim+c0:r*dim+c1], dy[r*dim+c0:r*dim+c1]
			w := dw[c0:c1]
			for i, v := range xr {
				w[i] += gr[i] * v * rs
			}
		}
	})
}

// colReduce splits dim columns into blocks of 16 over the workers, for
// reductions over rows that each worker can own a column range of (no
// partial sums to merge, deterministic).
func colReduce(dim int, fn func(c0, c1 int)) {
	blocks := (dim + 15) / 16
	ParallelFor(blocks, 1, func(lo, hi int) { fn(lo*16, min(hi*16, dim)) })
}

// ColSum writes out[j] = Σ_r x[r, j] for x [rows, dim] (a bias gradient).
func ColSum(out, x []float32, rows, dim int) { ColSumLd(out, x, rows, dim, dim) }

// ColSumLd is ColSum over the first dim columns of x [rows, ld]: the bias
// gradient of one weight whose output is a column block of a fused product.
func ColSumLd(out, x []float32, rows, dim, ld int) {
	colReduce(dim, func(c0, c1 int) {
		o := out[c0:c1]
		clear(o)
		for r := 0; r < rows; r++ {
			for i, v := range x[r*ld+c0 : r*ld+c1] {
				o[i] += v
			}
		}
	})
}

// HeadRMSNormBackward is HeadRMSNorm's backward for the heads vectors of
// dim per row at column off of x [rows, ld] (the values before the norm;
// dy and dx share that layout): dx is overwritten at those columns only,
// dw [dim] (summed over every row and head) is overwritten. rstd is what
// HeadRMSNorm stored.
func HeadRMSNormBackward(dx, dw, dy, x, w, rstd []float32, rows, ld, off, heads, dim int) {
	ParallelFor(rows*heads, max(normChunk, 4096/max(dim, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			o := (i/heads)*ld + off + (i%heads)*dim
			xr, gr, dr := x[o:o+dim], dy[o:o+dim], dx[o:o+dim]
			rs := rstd[i]
			// dx = rstd·(dy·w) − x·rstd³·mean(dy·w·x), as RMSNormBackward
			var s float32
			for j, v := range xr {
				s += gr[j] * w[j] * v
			}
			c := s / float32(dim) * rs * rs * rs
			for j, v := range xr {
				dr[j] = rs*gr[j]*w[j] - v*c
			}
		}
	})
	colReduce(dim, func(c0, c1 int) {
		d := dw[c0:c1]
		clear(d)
		for i := 0; i < rows*heads; i++ {
			o := (i/heads)*ld + off + (i%heads)*dim
			rs := rstd[i]
			for j, v := range x[o+c0 : o+c1] {
				d[j] += dy[o+c0+j] * v * rs
			}
		}
	})
}
