package kernels

import "math"

// LogProbAt returns log softmax(row)[id], computed in float64, and the
// row's first arg-max: the score of one token in evaluation (eval) and the
// CPU twin of the CUDA backend's TokenLogProbs.
func LogProbAt(row []float32, id int) (logp float64, argmax int) {
	mx := math.Inf(-1)
	for j, v := range row {
		if float64(v) > mx {
			mx, argmax = float64(v), j
		}
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return float64(row[id]) - mx - math.Log(s), argmax
}

// Cosine is cos(a, b) in float64 with Block Importance's rule for zero
// vectors: both zero → 1 (a layer that changed nothing), exactly one zero →
// 0. The CUDA backend's RowCosineSum follows it.
func Cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		ab += x * y
		aa += x * x
		bb += y * y
	}
	if aa == 0 || bb == 0 {
		if aa == bb {
			return 1
		}
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}
