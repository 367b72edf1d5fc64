package kernels

import (
	"fmt"
	"math"
)

// Activation is an MLP nonlinearity named by HF's hidden_act.
type Activation int

const (
	ReLU2    Activation = iota // relu(x)², Nemotron
	SiLU                       // x·sigmoid(x), Llama/Mistral (gated: SwiGLU)
	GELU                       // exact erf GELU
	GELUTanh                   // tanh approximation ("gelu_pytorch_tanh")
	ReLU
)

// ParseActivation maps an HF hidden_act name to an Activation.
func ParseActivation(name string) (Activation, error) {
	switch name {
	case "relu2":
		return ReLU2, nil
	case "silu", "swish":
		return SiLU, nil
	case "gelu":
		return GELU, nil
	case "gelu_pytorch_tanh", "gelu_new":
		return GELUTanh, nil
	case "relu":
		return ReLU, nil
	}
	return 0, fmt.Errorf("unsupported activation %q", name)
}

func (a Activation) String() string {
	return [...]string{"relu2", "silu", "gelu", "gelu_pytorch_tanh", "relu"}[a]
}

// Scalar applies the activation to one value.
func (a Activation) Scalar(v float32) float32 {
	switch a {
	case ReLU2:
		if v < 0 {
			return 0
		}
		return v * v
	case SiLU:
		return v / (1 + Exp32(-v))
	case GELU:
		return float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
	case GELUTanh:
		x := float64(v)
		return float32(0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))))
	case ReLU:
		if v < 0 {
			return 0
		}
		return v
	}
	panic("kernels: bad activation")
}

const elemChunk = 1 << 14

// Apply writes out[i] = act(x[i]); out may alias x.
func (a Activation) Apply(out, x []float32) {
	ParallelFor(len(x), elemChunk, func(lo, hi int) {
		xs, os := x[lo:hi], out[lo:hi]
		switch a {
		case ReLU2:
			if relu2Vec(os, xs) {
				return
			}
			// branchless: signs are random, so a branch mispredicts half
			// the time and costs more than the arithmetic
			for i, v := range xs {
				u := math.Float32bits(v)
				v = math.Float32frombits(u &^ uint32(int32(u)>>31))
				os[i] = v * v
			}
		case SiLU:
			for i, v := range xs {
				os[i] = v / (1 + Exp32(-v))
			}
		default:
			for i, v := range xs {
				os[i] = a.Scalar(v)
			}
		}
	})
}

// ApplyGated writes out[r,i] = act(gate[r,i])·up[r,i] (SwiGLU when act is
// SiLU). gate and up are [rows, ld] views whose first n columns are used, out
// is [rows, n] and may alias neither unless ld == n.
func (a Activation) ApplyGated(out, gate, up []float32, rows, n, ld int) {
	ParallelFor(rows, max(1, elemChunk/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			g, u, o := gate[r*ld:r*ld+n], up[r*ld:r*ld+n], out[r*n:(r+1)*n]
			if a == SiLU {
				for i, v := range g {
					o[i] = v / (1 + Exp32(-v)) * u[i]
				}
			} else {
				for i, v := range g {
					o[i] = a.Scalar(v) * u[i]
				}
			}
		}
	})
}

// AddBias adds bias[j] to every row of x [rows, len(bias)].
func AddBias(x, bias []float32, rows int) { AddBiasLd(x, bias, rows, len(bias)) }

// AddBiasLd adds bias[j] to the first len(bias) columns of every row of x
// [rows, ld]: one weight's bias on its column block of a fused product.
func AddBiasLd(x, bias []float32, rows, ld int) {
	n := len(bias)
	ParallelFor(rows, max(1, elemChunk/max(n, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x[r*ld : r*ld+n]
			for j, b := range bias {
				xr[j] += b
			}
		}
	})
}

// SumSquares returns Σ x² accumulated in float64 (a gradient norm's
// square).
func SumSquares(x []float32) float64 {
	if s, ok := sumSquaresVec(x); ok {
		return s
	}
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

// Add writes dst[i] += src[i] (the residual connection).
func Add(dst, src []float32) {
	ParallelFor(len(dst), elemChunk, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		for i := range d {
			d[i] += s[i]
		}
	})
}

// Embedding gathers rows of table [vocab, dim] into out [len(ids), dim]. It
// returns an error naming the first id outside [0, vocab).
func Embedding(out, table []float32, ids []int, dim int) error {
	vocab := len(table) / dim
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return fmt.Errorf("token id %d at position %d is outside the vocabulary [0,%d)", id, i, vocab)
		}
		copy(out[i*dim:(i+1)*dim], table[id*dim:(id+1)*dim])
	}
	return nil
}

// ApplyBlock applies the activation in place to columns [c0,c1) of rows
// [r0,r1) of x [rows, ld] — the epilogue form for ParMatMulTEpi.
func (a Activation) ApplyBlock(x []float32, ld, r0, r1, c0, c1 int) {
	for r := r0; r < r1; r++ {
		seg := x[r*ld+c0 : r*ld+c1]
		if a == ReLU2 {
			for i, v := range seg {
				u := math.Float32bits(v)
				v = math.Float32frombits(u &^ uint32(int32(u)>>31))
				seg[i] = v * v
			}
			continue
		}
		if a == SiLU {
			for i, v := range seg {
				seg[i] = v / (1 + Exp32(-v))
			}
			continue
		}
		for i, v := range seg {
			seg[i] = a.Scalar(v)
		}
	}
}

// GatedBlock writes gate = act(gate)·up on columns [c0,c1) of rows [r0,r1)
// of gate and up [rows, ld] — the SwiGLU epilogue for ParMatMulTEpi.
func (a Activation) GatedBlock(gate, up []float32, ld, r0, r1, c0, c1 int) {
	for r := r0; r < r1; r++ {
		g, u := gate[r*ld+c0:r*ld+c1], up[r*ld+c0:r*ld+c1]
		if a == SiLU {
			for i, v := range g {
				g[i] = v / (1 + Exp32(-v)) * u[i]
			}
			continue
		}
		for i, v := range g {
			g[i] = a.Scalar(v) * u[i]
		}
	}
}
