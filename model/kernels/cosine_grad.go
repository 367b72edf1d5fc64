package kernels

import "math"

// CosineLoss is the per-row cosine loss of distill's intermediate-state
// term: for each row r of y and t [rows, n] it stores loss[r] = 1 − cos(y_r,
// t_r) and dy_r = ∂loss[r]/∂y_r = −t_r/(|y_r||t_r|) + cos·y_r/|y_r|², both
// unscaled (a caller folds its loss weight into the products that consume
// dy). Squared norms are clamped at 1e-24 so a zero row gives a finite,
// zero-ish gradient instead of NaN; the CUDA kernel cosine_loss_rows
// follows the same formulas.
func CosineLoss(dy, loss, y, t []float32, rows, n int) {
	ParallelFor(rows, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			yr, tr, d := y[r*n:(r+1)*n], t[r*n:(r+1)*n], dy[r*n:(r+1)*n]
			var yy, tt, yt float64
			for i := range yr {
				a, b := float64(yr[i]), float64(tr[i])
				yy += a * a
				tt += b * b
				yt += a * b
			}
			c := yt / math.Sqrt(max(yy*tt, 1e-24))
			loss[r] = float32(1 - c)
			ny, nt := math.Sqrt(max(yy, 1e-24)), math.Sqrt(max(tt, 1e-24))
			a, b := float32(-1/(ny*nt)), float32(c/(ny*ny))
			for i := range yr {
				d[i] = a*tr[i] + b*yr[i]
			}
		}
	})
}
