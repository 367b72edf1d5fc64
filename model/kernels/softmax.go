package kernels

import "math"

// Exp32 is a fast float32 e^x (range reduction to |r| ≤ ln2/2 and a degree-7
// polynomial; relative error about 1e-7). It returns 0 below -87.3 (so a -Inf
// mask gives 0) and +Inf above 88.7.
func Exp32(x float32) float32 {
	if !(x > -87.33654) { // true for NaN too
		if x != x {
			return x
		}
		return 0
	}
	if x > 88.72283 {
		return float32(math.Inf(1))
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	// round to nearest by truncating toward zero after a signed half
	// (math.Floor goes through float64 and is several times slower)
	t := x * log2e
	if t < 0 {
		t -= 0.5
	} else {
		t += 0.5
	}
	n := float32(int32(t))
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// rowMax returns the largest value of x (-Inf for an empty row).
func rowMax(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}

// softmaxInPlace replaces x by softmax(x); a row of -Inf becomes zeros.
func softmaxInPlace(x []float32) { softmaxScaled(x, x, 1) }

// softmaxScaled writes dst = scale·softmax(x) (dst may alias x) and returns
// the row max m and s = Σ exp(x − m), so log-sum-exp is m + log s. A row
// whose max is −Inf becomes zeros (s = 0). It uses the vector kernel where
// the CPU has one (same algorithm as Exp32, float rounding apart).
func softmaxScaled(dst, x []float32, scale float32) (m float32, s float64) {
	if m, s, ok := softmaxRowVec(dst, x, scale); ok {
		return m, s
	}
	m = rowMax(x)
	if math.IsInf(float64(m), -1) {
		clear(dst)
		return m, 0
	}
	var s32 float32
	dst = dst[:len(x)]
	for i, v := range x {
		e := Exp32(v - m)
		dst[i] = e
		s32 += e
	}
	inv := scale / s32
	for i := range dst {
		dst[i] *= inv
	}
	return m, float64(s32)
}

// SoftmaxRows writes out = softmax(x) per row of x [rows, n]; out may alias x.
func SoftmaxRows(out, x []float32, rows, n int) {
	ParallelFor(rows, max(1, elemChunk/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			o := out[r*n : (r+1)*n]
			copy(o, x[r*n:(r+1)*n])
			softmaxInPlace(o)
		}
	})
}

// LogSumExpRows writes lse[r] = log Σ_j exp(x[r,j]) (accumulated in float64).
func LogSumExpRows(lse, x []float32, rows, n int) {
	ParallelFor(rows, max(1, elemChunk/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			lse[r] = logSumExp(x[r*n : (r+1)*n])
		}
	})
}

func logSumExp(x []float32) float32 {
	m := rowMax(x)
	if math.IsInf(float64(m), 0) {
		return m
	}
	var s float64
	for _, v := range x {
		s += float64(Exp32(v - m))
	}
	return m + float32(math.Log(s))
}

// LogSoftmaxRows writes out = x - logsumexp(x) per row; out may alias x.
func LogSoftmaxRows(out, x []float32, rows, n int) {
	ParallelFor(rows, max(1, elemChunk/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, o := x[r*n:(r+1)*n], out[r*n:(r+1)*n]
			l := logSumExp(xr)
			for i, v := range xr {
				o[i] = v - l
			}
		}
	})
}
