package kernels

import (
	"fmt"
	"math"
)

// RopeScaling mirrors HF's rope_scaling: Type "" (none), "linear" or "llama3".
type RopeScaling struct {
	Type                          string
	Factor                        float64
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositionEmbeddings int
}

// RopeInvFreq returns the rot/2 inverse frequencies theta^(-2i/rot), adjusted
// by scaling exactly as transformers' rope_utils computes them (in float32
// where transformers does): linear divides every frequency by factor; llama3
// divides low frequencies (wavelength > orig/low_freq_factor) by factor, keeps
// high ones (wavelength < orig/high_freq_factor), and interpolates between.
func RopeInvFreq(rot int, theta float64, s *RopeScaling) ([]float32, error) {
	if rot <= 0 || rot%2 != 0 {
		return nil, fmt.Errorf("rope: rotary dim %d must be positive and even", rot)
	}
	inv := make([]float32, rot/2)
	for i := range inv {
		e := float32(2*i) / float32(rot)
		inv[i] = 1 / float32(math.Pow(theta, float64(e)))
	}
	if s == nil || s.Type == "" || s.Type == "default" {
		return inv, nil
	}
	switch s.Type {
	case "linear":
		f := float32(s.Factor)
		for i := range inv {
			inv[i] /= f
		}
	case "llama3":
		f := s.Factor
		old := float64(s.OriginalMaxPositionEmbeddings)
		lowWave := old / s.LowFreqFactor
		highWave := old / s.HighFreqFactor
		for i, v := range inv {
			wave := 2 * math.Pi / float64(v)
			x := float64(v)
			if wave > lowWave {
				x = x / f
			} else if !(wave < highWave) {
				smooth := (old/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				x = (1-smooth)*x/f + smooth*x
			}
			inv[i] = float32(x)
		}
	default:
		return nil, fmt.Errorf("rope: unsupported rope_scaling type %q", s.Type)
	}
	return inv, nil
}

// RopeTables returns cos and sin tables [positions, len(invFreq)] with
// angle(p, i) = float32(p)·invFreq[i] rounded to float32 first, as
// transformers does.
func RopeTables(invFreq []float32, positions int) (cos, sin []float32) {
	h := len(invFreq)
	cos = make([]float32, positions*h)
	sin = make([]float32, positions*h)
	for p := 0; p < positions; p++ {
		for i, f := range invFreq {
			a := float64(float32(p) * f)
			cos[p*h+i] = float32(math.Cos(a))
			sin[p*h+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

// ApplyRope rotates, in place, the first rot dims of each of heads heads in
// each row of x [rows, ld] (head h starts at column h·headDim), rotate-half
// style: for i < rot/2, (a, b) = (x[i], x[i+rot/2]) becomes
// (a·cos − b·sin, b·cos + a·sin) with cos/sin = tables[pos[r], i] from
// RopeTables (row stride rot/2). Dims from rot to headDim pass through.
// Row r sits at position pos[r]. The inverse rotation (the backward pass) is
// ApplyRope with the sin table negated.
func ApplyRope(x []float32, rows, ld, heads, headDim, rot int, pos []int, cos, sin []float32) {
	half := rot / 2
	ParallelFor(rows, 32, func(lo, hi int) {
		if ropeVec(x[lo*ld:], hi-lo, ld, heads, headDim, rot, pos[lo:hi], cos, sin) {
			return
		}
		for r := lo; r < hi; r++ {
			p := pos[r]
			c, s := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
			for h := 0; h < heads; h++ {
				base := r*ld + h*headDim
				a := x[base : base+half]
				b := x[base+half : base+rot]
				for i := range a {
					av, bv := a[i], b[i]
					a[i] = av*c[i] - bv*s[i]
					b[i] = bv*c[i] + av*s[i]
				}
			}
		}
	})
}
