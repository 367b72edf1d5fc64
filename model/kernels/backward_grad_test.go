package kernels

import (
	"math"
	"math/rand"
	"testing"
)

// Each backward kernel against central finite differences of its forward
// kernel, through a random linear functional L = Σ R·f(x).

func gradRnd(rng *rand.Rand, n int, s float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64()) * s
	}
	return x
}

func gradDot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// fdCheck perturbs x at a few coordinates and compares dL/dx with grad.
func gradFD(t *testing.T, name string, x, grad []float32, loss func() float64) {
	t.Helper()
	rng := rand.New(rand.NewSource(9))
	for k := 0; k < 16; k++ {
		i := rng.Intn(len(x))
		x0 := x[i]
		h := float32(1e-2)
		x[i] = x0 + h
		lp := loss()
		x[i] = x0 - h
		lm := loss()
		x[i] = x0
		num := (lp - lm) / float64(2*h)
		if math.Abs(num-float64(grad[i])) > 1e-2*(1+math.Abs(num)) {
			t.Errorf("%s: coord %d: backward %.6g, finite difference %.6g", name, i, grad[i], num)
		}
	}
}

func TestNormBackward(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const rows, dim = 5, 24
	x, w, b, r := gradRnd(rng, rows*dim, 1), gradRnd(rng, dim, 0.3), gradRnd(rng, dim, 0.3), gradRnd(rng, rows*dim, 1)
	y := make([]float32, rows*dim)
	mean, rstd := make([]float32, rows), make([]float32, rows)
	ln := func() float64 { LayerNorm1PStats(y, mean, rstd, x, w, b, rows, dim, 1e-5); return gradDot(y, r) }
	ln()
	dx, dw, db := make([]float32, rows*dim), make([]float32, dim), make([]float32, dim)
	LayerNorm1PBackward(dx, dw, db, r, x, w, mean, rstd, rows, dim, false)
	gradFD(t, "layernorm1p dx", x, dx, ln)
	gradFD(t, "layernorm1p dw", w, dw, ln)
	gradFD(t, "layernorm1p db", b, db, ln)
	// accumulate adds to what dx held
	acc := append([]float32(nil), dx...)
	LayerNorm1PBackward(acc, dw, db, r, x, w, mean, rstd, rows, dim, true)
	for i := range acc {
		if math.Abs(float64(acc[i]-2*dx[i])) > 1e-6 {
			t.Fatalf("accumulate: %v, want %v", acc[i], 2*dx[i])
		}
	}
	rms := func() float64 { RMSNormStats(y, rstd, x, w, rows, dim, 1e-6); return gradDot(y, r) }
	rms()
	RMSNormBackward(dx, dw, r, x, w, rstd, rows, dim, false)
	gradFD(t, "rmsnorm dx", x, dx, rms)
	gradFD(t, "rmsnorm dw", w, dw, rms)
}

func TestActivationBackward(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const rows, n = 4, 10
	for _, a := range []Activation{ReLU2, SiLU, ReLU} {
		x, r := gradRnd(rng, rows*n, 1), gradRnd(rng, rows*n, 1)
		y := make([]float32, rows*n)
		f := func() float64 { a.Apply(y, x); return gradDot(y, r) }
		dx := make([]float32, rows*n)
		if err := a.Backward(dx, r, x); err != nil {
			t.Fatal(err)
		}
		gradFD(t, a.String(), x, dx, f)

		gu, ro := gradRnd(rng, rows*2*n, 1), gradRnd(rng, rows*n, 1)
		g := func() float64 { a.ApplyGated(y, gu, gu[n:], rows, n, 2*n); return gradDot(y, ro) }
		dgu := make([]float32, rows*2*n)
		if err := a.BackwardGated(dgu, dgu[n:], ro, gu, gu[n:], rows, n, 2*n); err != nil {
			t.Fatal(err)
		}
		gradFD(t, "gated "+a.String(), gu, dgu, g)
	}
	if err := GELU.Backward(nil, nil, nil); err == nil {
		t.Error("GELU has no backward yet and must say so")
	}
}

func TestAttentionBackward(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for _, c := range []struct {
		T, heads, kv, window int
		reason               string
	}{
		{7, 4, 2, 0, "GQA, one block"},
		{45, 2, 1, 0, "two query blocks"},
		{45, 2, 2, 9, "sliding window across blocks"},
	} {
		const B, hd = 2, 4
		W := (c.heads + 2*c.kv) * hd
		qkv, r := gradRnd(rng, B*c.T*W, 1), gradRnd(rng, B*c.T*c.heads*hd, 1)
		d := AttnDims{Batch: B, Heads: c.heads, KVHeads: c.kv, HeadDim: hd, Tq: c.T, Tk: c.T, Window: c.window, LdQ: W, LdK: W, LdV: W}
		out := make([]float32, B*c.T*c.heads*hd)
		probs := make([]float32, B*c.heads*c.T*c.T)
		qd, kvd := c.heads*hd, c.kv*hd
		f := func() float64 { Attention(out, qkv, qkv[qd:], qkv[qd+kvd:], d, probs); return gradDot(out, r) }
		f()
		g := make([]float32, len(qkv))
		AttentionBackward(g, g[qd:], g[qd+kvd:], r, qkv, qkv[qd:], qkv[qd+kvd:], probs, d, W, W, W, nil)
		gradFD(t, c.reason, qkv, g, f)
	}
}

func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	const rows, n, k = 3, 12, 4
	x, te := gradRnd(rng, rows*n, 2), gradRnd(rng, rows*n, 2)
	targets := []int{3, -1, 11}
	rl := make([]float32, rows)
	g := make([]float32, rows*n)
	sum := func() float64 {
		var s float64
		for _, v := range rl {
			s += float64(v)
		}
		return s
	}
	idx, val := make([]int32, rows*k), make([]float32, rows*k)
	TopK(idx, val, te, rows, n, k)
	for _, c := range []struct {
		name string
		run  func(grad []float32)
	}{
		{"ce (row 1 ignored)", func(gr []float32) { SoftmaxCrossEntropy(gr, x, targets, rows, n, 1, false, rl) }},
		{"kl τ=1.5", func(gr []float32) { KLForward(gr, x, te, rows, n, 1.5, 1, false, rl) }},
		{"reverse kl", func(gr []float32) { KLReverse(gr, x, te, rows, n, 1, 1, false, rl) }},
		{"top-k kl", func(gr []float32) { KLForwardTopK(gr, x, idx, val, k, rows, n, 1, 1, false, rl) }},
		{"cosine (intermediate-state loss)", func(gr []float32) { CosineLoss(gr, rl, x, te, rows, n) }},
	} {
		c.run(g)
		grad := append([]float32(nil), g...)
		gradFD(t, c.name, x, grad, func() float64 { c.run(g); return sum() })
	}
	// TopK returns the k largest in descending order.
	for r := 0; r < rows; r++ {
		for j := 1; j < k; j++ {
			if val[r*k+j] > val[r*k+j-1] {
				t.Fatalf("row %d not descending: %v", r, val[r*k:(r+1)*k])
			}
		}
		cnt := 0
		for _, v := range te[r*n : (r+1)*n] {
			if v > val[r*k+k-1] {
				cnt++
			}
		}
		if cnt != k-1 {
			t.Fatalf("row %d: %d values above the k-th, want %d", r, cnt, k-1)
		}
	}
}
