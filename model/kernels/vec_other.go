//go:build !cgo || purego || !amd64

package kernels

func softmaxRowVec(dst, x []float32, scale float32) (m float32, s float64, ok bool) {
	return 0, 0, false
}

const haveVec = false

func relu2Vec(out, x []float32) bool                                             { return false }
func relu2BackwardVec(dx, dy, x []float32) bool                                  { return false }
func adamWVec(w, g, m, v []float32, b1, b2, decay, step, rbc2, eps float32) bool { return false }

func layerNorm1PVec(out, mean, rstd, x, w, b []float32, rows, dim int, eps float32) bool {
	return false
}
func layerNorm1PDxVec(dx, dy, x, w, mean, rstd []float32, rows, dim int, accumulate bool) bool {
	return false
}

func sumSquaresVec(x []float32) (float64, bool) { return 0, false }

func attnDSVec(p []float32, ldp int, dp []float32, n, rows, i0 int, scale float32) bool {
	return false
}

func ropeVec(x []float32, rows, ld, heads, headDim, rot int, pos []int, cos, sin []float32) bool {
	return false
}

func layerNorm1PDwVec(dw, db, dy, x, mean, rstd []float32, rows, dim, c0, c1 int) bool {
	return false
}
