package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// softmaxScaledRef is the scalar Exp32 softmax the vector kernel must match.
func softmaxScaledRef(dst, x []float32, scale float32) (float32, float64) {
	m := rowMax(x)
	if math.IsInf(float64(m), -1) {
		clear(dst)
		return m, 0
	}
	var s float64
	for i, v := range x {
		dst[i] = Exp32(v - m)
		s += float64(dst[i])
	}
	for i := range dst {
		dst[i] = float32(float64(dst[i]) * float64(scale) / s)
	}
	return m, s
}

func TestSoftmaxScaledMatchesScalar(t *testing.T) {
	t.Logf("vector kernel in use: %v", haveVec)
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		reason string
		n      int
		gen    func(i int) float32
		scale  float32
	}{
		{"empty row", 0, nil, 1},
		{"shorter than a vector (tail only)", 5, func(int) float32 { return rng.Float32()*20 - 10 }, 1},
		{"vector plus tail", 29, func(int) float32 { return rng.Float32()*20 - 10 }, 0.5},
		{"vocabulary-sized row, scaled as a mean loss gradient", 4096, func(int) float32 { return float32(rng.NormFloat64() * 3) }, 1.0 / 1024},
		{"wide range: deep underflow to zero", 64, func(i int) float32 { return float32(i) * -3 }, 1},
		{"masked entries (-Inf) give exact zeros", 40, func(i int) float32 {
			if i%3 == 0 {
				return float32(math.Inf(-1))
			}
			return rng.Float32()
		}, 1},
		{"all -Inf row becomes zeros", 17, func(int) float32 { return float32(math.Inf(-1)) }, 1},
		{"huge logits (shift keeps exp finite)", 33, func(int) float32 { return 1e30 + rng.Float32()*1e25 }, 1},
	}
	for _, c := range cases {
		x := make([]float32, c.n)
		for i := range x {
			x[i] = c.gen(i)
		}
		got, want := make([]float32, c.n), make([]float32, c.n)
		gm, gs := softmaxScaled(got, x, c.scale)
		wm, ws := softmaxScaledRef(want, x, c.scale)
		if gm != wm && !(math.IsInf(float64(gm), -1) && math.IsInf(float64(wm), -1)) && c.n > 0 {
			t.Errorf("%s: max %g, want %g", c.reason, gm, wm)
		}
		if math.Abs(gs-ws) > 1e-5*ws {
			t.Errorf("%s: sum %g, want %g", c.reason, gs, ws)
		}
		for i := range got {
			if d := math.Abs(float64(got[i] - want[i])); d > 2e-6*math.Abs(float64(want[i]))+1e-30 {
				t.Errorf("%s: [%d] = %g, want %g", c.reason, i, got[i], want[i])
				break
			}
		}
		// in place (the loss kernels write the gradient over the logits)
		softmaxScaled(x, x, c.scale)
		for i := range x {
			if x[i] != got[i] {
				t.Errorf("%s: in-place [%d] = %g, want %g", c.reason, i, x[i], got[i])
				break
			}
		}
	}
}

func TestAdamWStepMatchesScalarExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 8, 37, 1000} {
		w, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range w {
			w[i], g[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()*1e-2)
			m[i], v[i] = float32(rng.NormFloat64()*1e-3), rng.Float32()*1e-4
		}
		w2, m2, v2 := append([]float32(nil), w...), append([]float32(nil), m...), append([]float32(nil), v...)
		var b1, b2, decay, step, rbc2, eps float32 = 0.9, 0.999, 0.9999, 1e-3, 31.6, 1e-8
		AdamWStep(w, g, m, v, b1, b2, decay, step, rbc2, eps)
		for j := range w2 { // the formula as written in AdamWStep's doc
			mj := b1*m2[j] + (1-b1)*g[j]
			vj := b2*v2[j] + (1-b2)*g[j]*g[j]
			m2[j], v2[j] = mj, vj
			w2[j] = w2[j]*decay - step*mj/(float32(math.Sqrt(float64(vj)))*rbc2+eps)
		}
		for j := range w {
			if w[j] != w2[j] || m[j] != m2[j] || v[j] != v2[j] {
				t.Fatalf("n=%d [%d]: w,m,v = %g,%g,%g, want %g,%g,%g", n, j, w[j], m[j], v[j], w2[j], m2[j], v2[j])
			}
		}
	}
}

func TestReLU2MatchesScalar(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{-2, -0.5, 0, 0.5, 3, nan, -1e-30, 1e19, 4, -4, 2.5, -7, 1, 9, 0.25, -3, 6}
	dy := make([]float32, len(x))
	for i := range dy {
		dy[i] = float32(i) - 5.5
	}
	y, dx := make([]float32, len(x)), make([]float32, len(x))
	ReLU2.Apply(y, x)
	if err := ReLU2.Backward(dx, dy, x); err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		wy, wd := float32(0), float32(0)
		if v > 0 || v != v {
			wy, wd = v*v, dy[i]*2*v
		}
		same := func(a, b float32) bool { return a == b || (a != a && b != b) }
		if !same(y[i], wy) || !same(dx[i], wd) {
			t.Errorf("x=%g: relu² %g (want %g), backward %g (want %g)", v, y[i], wy, dx[i], wd)
		}
	}
}

// TestLayerNorm1PAgainstFloat64 checks the forward and dx (vector kernel
// where available) against a float64 evaluation, with dims that leave a
// tail after the 8-wide vectors.
func TestLayerNorm1PAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		reason     string
		rows, dim  int
		bias, accu bool
	}{
		{"dim below one vector", 3, 5, false, false},
		{"vectors plus tail, bias, accumulating dx", 4, 43, true, true},
		{"bench hidden size", 2, 256, false, false},
	} {
		n := c.rows * c.dim
		x, dy, w, out, dx := make([]float32, n), make([]float32, n), make([]float32, c.dim), make([]float32, n), make([]float32, n)
		var b []float32
		if c.bias {
			b = make([]float32, c.dim)
		}
		for i := range x {
			x[i], dy[i], dx[i] = float32(rng.NormFloat64()*2+1), float32(rng.NormFloat64()), 0.5
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.1)
			if b != nil {
				b[i] = float32(rng.NormFloat64() * 0.1)
			}
		}
		mean, rstd := make([]float32, c.rows), make([]float32, c.rows)
		const eps = 1e-5
		LayerNorm1PStats(out, mean, rstd, x, w, b, c.rows, c.dim, eps)
		dw := make([]float32, c.dim)
		var db []float32
		if c.bias {
			db = make([]float32, c.dim)
		}
		LayerNorm1PBackward(dx, dw, db, dy, x, w, mean, rstd, c.rows, c.dim, c.accu)
		wantDw, wantDb := make([]float64, c.dim), make([]float64, c.dim)
		for r := 0; r < c.rows; r++ {
			var mu, vr float64
			for i := 0; i < c.dim; i++ {
				mu += float64(x[r*c.dim+i])
			}
			mu /= float64(c.dim)
			for i := 0; i < c.dim; i++ {
				d := float64(x[r*c.dim+i]) - mu
				vr += d * d
			}
			rs := 1 / math.Sqrt(vr/float64(c.dim)+eps)
			var s1, s2 float64
			for i := 0; i < c.dim; i++ {
				g := float64(dy[r*c.dim+i]) * (float64(w[i]) + 1)
				s1 += g
				s2 += g * (float64(x[r*c.dim+i]) - mu) * rs
			}
			s1, s2 = s1/float64(c.dim), s2/float64(c.dim)
			for i := 0; i < c.dim; i++ {
				xh := (float64(x[r*c.dim+i]) - mu) * rs
				want := xh * (float64(w[i]) + 1)
				if b != nil {
					want += float64(b[i])
				}
				if d := math.Abs(float64(out[r*c.dim+i]) - want); d > 1e-5*(1+math.Abs(want)) {
					t.Fatalf("%s: out[%d,%d] = %g, want %g", c.reason, r, i, out[r*c.dim+i], want)
				}
				wantDw[i] += float64(dy[r*c.dim+i]) * xh
				wantDb[i] += float64(dy[r*c.dim+i])
				wd := rs * (float64(dy[r*c.dim+i])*(float64(w[i])+1) - s1 - xh*s2)
				if c.accu {
					wd += 0.5
				}
				if d := math.Abs(float64(dx[r*c.dim+i]) - wd); d > 1e-4*(1+math.Abs(wd)) {
					t.Fatalf("%s: dx[%d,%d] = %g, want %g", c.reason, r, i, dx[r*c.dim+i], wd)
				}
			}
		}
		for i := range dw {
			if d := math.Abs(float64(dw[i]) - wantDw[i]); d > 1e-5*(1+math.Abs(wantDw[i])) {
				t.Fatalf("%s: dw[%d] = %g, want %g", c.reason, i, dw[i], wantDw[i])
			}
			if db != nil && math.Abs(float64(db[i])-wantDb[i]) > 1e-5*(1+math.Abs(wantDb[i])) {
				t.Fatalf("%s: db[%d] = %g, want %g", c.reason, i, db[i], wantDb[i])
			}
		}
	}
}

func TestSumSquares(t *testing.T) {
	for _, n := range []int{0, 3, 8, 29, 4096} {
		x := make([]float32, n)
		var want float64
		for i := range x {
			x[i] = float32(i%7) - 2.5
			want += float64(x[i]) * float64(x[i])
		}
		if got := SumSquares(x); math.Abs(got-want) > 1e-12*(1+want) {
			t.Errorf("n=%d: %g, want %g", n, got, want)
		}
	}
}
