package kernels

import (
	"math"
	"math/rand"
	"testing"
)

func randSlice(rng *rand.Rand, n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = (rng.Float32()*2 - 1) * scale
	}
	return x
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > m || d != d {
			m = d
		}
	}
	return m
}

func TestExp32(t *testing.T) {
	for x := -87.0; x <= 88; x += 0.0137 {
		got := float64(Exp32(float32(x)))
		want := math.Exp(float64(float32(x)))
		if rel := math.Abs(got-want) / want; rel > 3e-7 {
			t.Fatalf("Exp32(%v) = %v, want %v (rel err %g)", x, got, want, rel)
		}
	}
	cases := []struct {
		x      float32
		want   float32
		reason string
	}{
		{float32(math.Inf(-1)), 0, "a -Inf mask must give exactly 0"},
		{-1000, 0, "underflow gives 0"},
		{1000, float32(math.Inf(1)), "overflow gives +Inf"},
		{0, 1, "e^0 is exactly 1"},
	}
	for _, c := range cases {
		if got := Exp32(c.x); got != c.want {
			t.Errorf("%s: Exp32(%v) = %v, want %v", c.reason, c.x, got, c.want)
		}
	}
	if v := Exp32(float32(math.NaN())); v == v {
		t.Errorf("Exp32(NaN) = %v, want NaN", v)
	}
}

func TestNorms(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	rows, dim := 37, 48
	x := randSlice(rng, rows*dim, 3)
	for i := range x[:dim] {
		x[i] += 100 // a large mean must not hurt the variance
	}
	w, b := randSlice(rng, dim, 1), randSlice(rng, dim, 1)
	eps := float32(1e-5)
	ln := make([]float32, rows*dim)
	mean, rstd := make([]float32, rows), make([]float32, rows)
	LayerNorm1PStats(ln, mean, rstd, x, w, b, rows, dim, eps)
	lnNoBias := make([]float32, rows*dim)
	LayerNorm1P(lnNoBias, x, w, nil, rows, dim, eps)
	rms := make([]float32, rows*dim)
	RMSNorm(rms, x, w, rows, dim, eps)
	for r := 0; r < rows; r++ {
		xr := x[r*dim : (r+1)*dim]
		var mu, v, ms float64
		for _, a := range xr {
			mu += float64(a)
			ms += float64(a) * float64(a)
		}
		mu /= float64(dim)
		ms /= float64(dim)
		for _, a := range xr {
			v += (float64(a) - mu) * (float64(a) - mu)
		}
		v /= float64(dim)
		for i := range xr {
			n := (float64(xr[i]) - mu) / math.Sqrt(v+1e-5)
			want := n*(float64(w[i])+1) + float64(b[i])
			if d := math.Abs(float64(ln[r*dim+i]) - want); d > 1e-4 {
				t.Fatalf("LayerNorm1P row %d col %d: %v want %v", r, i, ln[r*dim+i], want)
			}
			if d := math.Abs(float64(lnNoBias[r*dim+i]) - (want - float64(b[i]))); d > 1e-4 {
				t.Fatalf("LayerNorm1P without bias row %d col %d", r, i)
			}
			wr := float64(xr[i]) / math.Sqrt(ms+1e-5) * float64(w[i])
			if d := math.Abs(float64(rms[r*dim+i]) - wr); d > 1e-4 {
				t.Fatalf("RMSNorm row %d col %d: %v want %v", r, i, rms[r*dim+i], wr)
			}
		}
		if math.Abs(float64(mean[r])-mu) > 1e-4 || math.Abs(float64(rstd[r])-1/math.Sqrt(v+1e-5)) > 1e-3 {
			t.Fatalf("LayerNorm1PStats row %d: mean %v rstd %v", r, mean[r], rstd[r])
		}
	}
	// in place
	cp := append([]float32(nil), x...)
	RMSNorm(cp, cp, w, rows, dim, eps)
	if maxAbsDiff(cp, rms) != 0 {
		t.Fatal("RMSNorm in place differs")
	}
}

func TestRopeInvFreq(t *testing.T) {
	base, _ := RopeInvFreq(8, 10000, nil)
	want := []float64{1, 0.1, 0.01, 0.001}
	for i := range want {
		if math.Abs(float64(base[i])-want[i])/want[i] > 1e-6 {
			t.Fatalf("inv_freq[%d] = %v want %v", i, base[i], want[i])
		}
	}
	lin, _ := RopeInvFreq(8, 10000, &RopeScaling{Type: "linear", Factor: 4})
	for i := range lin {
		if math.Abs(float64(lin[i]*4-base[i])) > 1e-9 {
			t.Fatalf("linear scaling[%d]: %v", i, lin[i])
		}
	}
	// llama3 with original context 8192, low 1, high 4, factor 8 (Llama 3.1):
	// wavelengths 2π/f; > 8192 → /8, < 2048 → kept, between → interpolated.
	s := &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	l3, _ := RopeInvFreq(128, 500000, s)
	b3, _ := RopeInvFreq(128, 500000, nil)
	var kept, divided, mid int
	for i := range l3 {
		wave := 2 * math.Pi / float64(b3[i])
		switch {
		case wave < 2048:
			kept++
			if l3[i] != b3[i] {
				t.Fatalf("high frequency %d changed", i)
			}
		case wave > 8192:
			divided++
			if math.Abs(float64(l3[i])*8-float64(b3[i]))/float64(b3[i]) > 1e-6 {
				t.Fatalf("low frequency %d not divided by 8", i)
			}
		default:
			mid++
			sm := (8192/wave - 1) / 3
			w := (1-sm)*float64(b3[i])/8 + sm*float64(b3[i])
			if math.Abs(float64(l3[i])-w)/w > 1e-6 {
				t.Fatalf("medium frequency %d = %v want %v", i, l3[i], w)
			}
		}
	}
	if kept == 0 || divided == 0 || mid == 0 {
		t.Fatalf("test does not cover all three bands: %d %d %d", kept, divided, mid)
	}
	if _, err := RopeInvFreq(8, 10000, &RopeScaling{Type: "yarn"}); err == nil {
		t.Fatal("unsupported scaling must fail")
	}
}

func TestApplyRope(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	rows, heads, hd, rot := 5, 3, 24, 20 // rot/2 = 10: one 8-wide vector and a tail
	ld := heads*hd + 4                   // a strided view (fused buffer)
	inv, _ := RopeInvFreq(rot, 10000, nil)
	cos, sin := RopeTables(inv, 64)
	x := randSlice(rng, rows*ld, 1)
	orig := append([]float32(nil), x...)
	pos := []int{0, 7, 3, 63, 1}
	ApplyRope(x, rows, ld, heads, hd, rot, pos, cos, sin)
	for r := 0; r < rows; r++ {
		for h := 0; h < heads; h++ {
			base := r*ld + h*hd
			for i := 0; i < hd; i++ {
				var want float64
				o := func(j int) float64 { return float64(orig[base+j]) }
				if i < rot {
					j := i % (rot / 2)
					ang := float64(pos[r]) * float64(inv[j])
					if i < rot/2 {
						want = o(i)*math.Cos(ang) - o(i+rot/2)*math.Sin(ang)
					} else {
						want = o(i)*math.Cos(ang) + o(i-rot/2)*math.Sin(ang)
					}
				} else {
					want = o(i)
				}
				if d := math.Abs(float64(x[base+i]) - want); d > 1e-5 {
					t.Fatalf("row %d head %d dim %d: %v want %v", r, h, i, x[base+i], want)
				}
			}
		}
		for j := heads * hd; j < ld; j++ {
			if x[r*ld+j] != orig[r*ld+j] {
				t.Fatal("columns past the heads were touched")
			}
		}
	}
	// negated sin undoes the rotation (the backward pass relies on it)
	nsin := make([]float32, len(sin))
	for i := range sin {
		nsin[i] = -sin[i]
	}
	ApplyRope(x, rows, ld, heads, hd, rot, pos, cos, nsin)
	if d := maxAbsDiff(x, orig); d > 1e-5 {
		t.Fatalf("inverse rotation off by %g", d)
	}
}

// naiveAttention is the textbook per-position loop, float64.
func naiveAttention(q, k, v []float32, d AttnDims) []float32 {
	d.fill()
	out := make([]float32, d.Batch*d.Tq*d.LdO)
	group := d.Heads / d.KVHeads
	for b := 0; b < d.Batch; b++ {
		for h := 0; h < d.Heads; h++ {
			g := h / group
			for i := 0; i < d.Tq; i++ {
				pos := d.Tk - d.Tq + i
				sc := make([]float64, d.Tk)
				m := math.Inf(-1)
				for j := 0; j < d.Tk; j++ {
					if j > pos || (d.Window > 0 && j <= pos-d.Window) {
						sc[j] = math.Inf(-1)
						continue
					}
					var s float64
					for c := 0; c < d.HeadDim; c++ {
						s += float64(q[(b*d.Tq+i)*d.LdQ+h*d.HeadDim+c]) * float64(k[(b*d.KSeqRows+j)*d.LdK+g*d.HeadDim+c])
					}
					sc[j] = s / math.Sqrt(float64(d.HeadDim))
					m = math.Max(m, sc[j])
				}
				var z float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - m)
					z += sc[j]
				}
				for c := 0; c < d.HeadDim; c++ {
					var o float64
					for j := range sc {
						o += sc[j] / z * float64(v[(b*d.KSeqRows+j)*d.LdV+g*d.HeadDim+c])
					}
					out[(b*d.Tq+i)*d.LdO+h*d.HeadDim+c] = float32(o)
				}
			}
		}
	}
	return out
}

func TestAttentionMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	cases := []struct {
		d      AttnDims
		reason string
	}{
		{AttnDims{Batch: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Tq: 70, Tk: 70}, "GQA, several query blocks"},
		{AttnDims{Batch: 1, Heads: 2, KVHeads: 2, HeadDim: 16, Tq: 9, Tk: 9}, "plain MHA, one block"},
		{AttnDims{Batch: 2, Heads: 4, KVHeads: 1, HeadDim: 8, Tq: 50, Tk: 50, Window: 7}, "sliding window shorter than the sequence (MQA)"},
		{AttnDims{Batch: 2, Heads: 4, KVHeads: 2, HeadDim: 8, Tq: 1, Tk: 40, KSeqRows: 64}, "one decode step against a KV cache"},
		{AttnDims{Batch: 1, Heads: 4, KVHeads: 2, HeadDim: 8, Tq: 5, Tk: 45, KSeqRows: 48, Window: 10}, "a chunk of queries after a cache, windowed"},
		{AttnDims{Batch: 2, Heads: 2, KVHeads: 1, HeadDim: 4, Tq: 33, Tk: 33, LdQ: 20, LdK: 20, LdV: 20, LdO: 9}, "strided views of a fused QKV buffer"},
	}
	for _, c := range cases {
		d := c.d
		d.fill()
		q := randSlice(rng, d.Batch*d.Tq*d.LdQ, 2)
		k := randSlice(rng, d.Batch*d.KSeqRows*d.LdK, 2)
		v := randSlice(rng, d.Batch*d.KSeqRows*d.LdV, 1)
		want := naiveAttention(q, k, v, d)
		got := make([]float32, len(want))
		probs := make([]float32, d.Batch*d.Heads*d.Tq*d.Tk)
		Attention(got, q, k, v, c.d, probs)
		for r := 0; r < d.Batch*d.Tq; r++ {
			for col := 0; col < d.Heads*d.HeadDim; col++ {
				i := r*d.LdO + col
				if math.Abs(float64(got[i]-want[i])) > 2e-5 {
					t.Fatalf("%s: out[%d,%d] = %v want %v", c.reason, r, col, got[i], want[i])
				}
			}
		}
		for row := 0; row < d.Batch*d.Heads*d.Tq; row++ {
			var s float64
			pos := d.Tk - d.Tq + row%d.Tq
			for j, p := range probs[row*d.Tk : (row+1)*d.Tk] {
				s += float64(p)
				if p != 0 && (j > pos || (d.Window > 0 && j <= pos-d.Window)) {
					t.Fatalf("%s: masked key %d has weight %v", c.reason, j, p)
				}
			}
			if math.Abs(s-1) > 1e-5 {
				t.Fatalf("%s: probs row %d sums to %v", c.reason, row, s)
			}
		}
	}
}

func TestActivations(t *testing.T) {
	cases := []struct {
		a      Activation
		x      float32
		want   float64
		reason string
	}{
		{ReLU2, -2, 0, "relu² clamps negatives"},
		{ReLU2, 3, 9, "relu² squares"},
		{SiLU, 1, 1 / (1 + math.Exp(-1)), "silu(1)"},
		{SiLU, -3, -3 / (1 + math.Exp(3)), "silu(-3)"},
		{GELU, 1, 0.8413447460685429, "gelu(1) = Φ(1)"},
		{GELUTanh, 1, 0.8411919906082768, "tanh gelu(1)"},
		{ReLU, -1, 0, "relu"},
	}
	for _, c := range cases {
		out := []float32{0}
		c.a.Apply(out, []float32{c.x})
		if math.Abs(float64(out[0])-c.want) > 1e-6 {
			t.Errorf("%s: %v(%v) = %v want %v", c.reason, c.a, c.x, out[0], c.want)
		}
	}
	if _, err := ParseActivation("tanh"); err == nil {
		t.Error("unknown activation must fail")
	}
	gate := []float32{1, 2, 99, -1, 0.5, 99}
	up := []float32{2, 3, 99, 4, -2, 99}
	out := make([]float32, 4)
	SiLU.ApplyGated(out, gate, up, 2, 2, 3)
	for i, idx := range []int{0, 1, 3, 4} {
		g := float64(gate[idx])
		want := g / (1 + math.Exp(-g)) * float64(up[idx])
		if math.Abs(float64(out[i])-want) > 1e-6 {
			t.Errorf("SwiGLU[%d] = %v want %v", i, out[i], want)
		}
	}
}

func TestSoftmaxFamily(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	rows, n := 7, 300
	x := randSlice(rng, rows*n, 20)
	sm := make([]float32, rows*n)
	ls := make([]float32, rows*n)
	lse := make([]float32, rows)
	SoftmaxRows(sm, x, rows, n)
	LogSoftmaxRows(ls, x, rows, n)
	LogSumExpRows(lse, x, rows, n)
	for r := 0; r < rows; r++ {
		var z float64
		for _, v := range x[r*n : (r+1)*n] {
			z += math.Exp(float64(v))
		}
		if math.Abs(math.Log(z)-float64(lse[r])) > 1e-5 {
			t.Fatalf("lse row %d: %v want %v", r, lse[r], math.Log(z))
		}
		for j := 0; j < n; j++ {
			p := math.Exp(float64(x[r*n+j])) / z
			if math.Abs(float64(sm[r*n+j])-p) > 1e-6 || math.Abs(float64(ls[r*n+j])-math.Log(p)) > 1e-4 {
				t.Fatalf("row %d col %d: softmax %v logsoftmax %v want %v", r, j, sm[r*n+j], ls[r*n+j], p)
			}
		}
	}
}

func TestEmbedding(t *testing.T) {
	table := []float32{0, 1, 10, 11, 20, 21}
	out := make([]float32, 6)
	if err := Embedding(out, table, []int{2, 0, 1}, 2); err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(out, []float32{20, 21, 0, 1, 10, 11}) != 0 {
		t.Fatalf("gather: %v", out)
	}
	if err := Embedding(out, table, []int{0, 3}, 2); err == nil {
		t.Fatal("out-of-vocabulary id must fail")
	}
}

func TestParSgemmMatchesSgemm(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	old := SetWorkers(3)
	defer SetWorkers(old)
	for _, c := range []struct {
		m, n, k int
		reason  string
	}{
		{100, 515, 64, "split over columns, ragged last block"},
		{300, 20, 128, "narrow output: split over rows"},
		{1, 4096, 256, "one-row decode product"},
	} {
		x := randSlice(rng, c.m*c.k, 1)
		w := randSlice(rng, c.n*c.k, 1)
		want := make([]float32, c.m*c.n)
		got := make([]float32, c.m*c.n)
		MatMulT(want, x, w, c.m, c.n, c.k, false)
		ParMatMulT(got, x, w, c.m, c.n, c.k, false)
		if d := maxAbsDiff(got, want); d > 1e-4 {
			t.Fatalf("%s: differs by %g", c.reason, d)
		}
	}
}

func TestParallelForCovers(t *testing.T) {
	old := SetWorkers(4)
	defer SetWorkers(old)
	for _, n := range []int{0, 1, 3, 17, 1000} {
		seen := make([]int32, n)
		ParallelFor(n, 2, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, s := range seen {
			if s != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, s)
			}
		}
	}
}

// The epilogue sees every element of C exactly once, after it is computed.
func TestParSgemmEpiCoversC(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	old := SetWorkers(3)
	defer SetWorkers(old)
	for _, c := range []struct {
		m, n, k int
		reason  string
	}{
		{90, 700, 40, "column blocks"},
		{300, 20, 128, "row blocks"},
		{3, 5, 2, "too small to split"},
	} {
		x := randSlice(rng, c.m*c.k, 1)
		w := randSlice(rng, c.n*c.k, 1)
		want := make([]float32, c.m*c.n)
		MatMulT(want, x, w, c.m, c.n, c.k, false)
		got := make([]float32, c.m*c.n)
		visits := make([]int32, c.m*c.n)
		ParMatMulTEpi(got, x, w, c.m, c.n, c.k, false, func(r0, r1, c0, c1 int) {
			ReLU2.ApplyBlock(got, c.n, r0, r1, c0, c1)
			for r := r0; r < r1; r++ {
				for j := c0; j < c1; j++ {
					visits[r*c.n+j]++
				}
			}
		})
		ReLU2.Apply(want, want)
		for i := range visits {
			if visits[i] != 1 {
				t.Fatalf("%s: element %d visited %d times", c.reason, i, visits[i])
			}
		}
		if d := maxAbsDiff(got, want); d > 1e-4 {
			t.Fatalf("%s: fused relu² differs by %g", c.reason, d)
		}
	}
}
