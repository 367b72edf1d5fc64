package model

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestHooks(t *testing.T) {
	m, err := Load(caseDir("nemotron-headdim-sharded"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Cfg
	rc := readRef(t, caseDir("nemotron-headdim-sharded"))
	ids := rc.Batch
	B, T := len(ids), len(ids[0])
	rows := B * T
	saved := map[string][]float32{}
	dims := map[string]int{}
	rec := func(kind string, dim int) Hook {
		dims[kind] = dim
		return func(layer, b, s int, x []float32) {
			if b != B || s != T {
				t.Errorf("%s: shape (%d,%d), want (%d,%d)", kind, b, s, B, T)
			}
			if len(x) != rows*dim {
				t.Errorf("%s layer %d: %d values, want %d×%d", kind, layer, len(x), rows, dim)
			}
			saved[fmt.Sprintf("%s/%d", kind, layer)] = append([]float32(nil), x...)
		}
	}
	H, F, qd := c.HiddenSize, c.IntermediateSize, c.QDim()
	hk := &Hooks{
		LayerInput: rec("in", H), AttnNorm: rec("attnnorm", H), AttnHeads: rec("heads", qd),
		MLPNorm: rec("mlpnorm", H), MLPPre: rec("pre", F), MLPPost: rec("post", F),
		LayerOutput: rec("out", H), FinalNorm: rec("final", H),
	}
	logits, err := m.Forward(ids, &ForwardOptions{Hooks: hk})
	if err != nil {
		t.Fatal(err)
	}
	if want := 7*c.NumLayers + 1; len(saved) != want {
		t.Fatalf("saw %d hook calls, want %d", len(saved), want)
	}
	same := func(a, b []float32, what string, tol float64) {
		t.Helper()
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > tol {
				t.Fatalf("%s: index %d: %v vs %v", what, i, a[i], b[i])
			}
		}
	}
	// the residual stream flows from one layer to the next
	for l := 0; l+1 < c.NumLayers; l++ {
		same(saved[fmt.Sprintf("out/%d", l)], saved[fmt.Sprintf("in/%d", l+1)], "layer output = next input", 0)
	}
	// post = relu(pre)² for nemotron
	pre, post := saved["pre/1"], saved["post/1"]
	for i, v := range pre {
		want := float32(math.Max(0, float64(v)))
		if math.Abs(float64(post[i]-want*want)) > 1e-5*(1+float64(want*want)) {
			t.Fatalf("post[%d] = %v, relu(pre)² = %v", i, post[i], want*want)
		}
	}
	// the final norm hook is the Hidden output, and logits = hidden·lm_headᵀ
	hidden, err := m.Forward(ids, &ForwardOptions{Output: Hidden})
	if err != nil {
		t.Fatal(err)
	}
	same(saved[fmt.Sprintf("final/%d", c.NumLayers)], hidden, "final norm hook vs Hidden output", 0)
	head, _ := m.readTensor("lm_head.weight")
	for r := 0; r < rows; r += 7 {
		for v := 0; v < c.VocabSize; v += 5 {
			var s float64
			for j := 0; j < H; j++ {
				s += float64(hidden[r*H+j]) * float64(head[v*H+j])
			}
			if math.Abs(s-float64(logits[r*c.VocabSize+v])) > 1e-4 {
				t.Fatalf("logit (%d,%d) = %v, hidden·head = %v", r, v, logits[r*c.VocabSize+v], s)
			}
		}
	}

	// Recompute one head's attention output of layer 1 by hand from the
	// attn-norm hook: q/k/v projections, partial RoPE (float64 angles),
	// causal softmax.
	l, h := 1, 3
	hd, rot := c.HeadDim, c.RotaryDim()
	g := h / (c.NumHeads / c.NumKVHeads)
	p := LayerPrefix(l)
	wq, _ := m.readTensor(p + "self_attn.q_proj.weight")
	wk, _ := m.readTensor(p + "self_attn.k_proj.weight")
	wv, _ := m.readTensor(p + "self_attn.v_proj.weight")
	x := saved[fmt.Sprintf("attnnorm/%d", l)]
	proj := func(w []float32, head, r int) []float64 {
		out := make([]float64, hd)
		for d := 0; d < hd; d++ {
			for j := 0; j < H; j++ {
				out[d] += float64(x[r*H+j]) * float64(w[(head*hd+d)*H+j])
			}
		}
		return out
	}
	rope := func(v []float64, pos int) {
		half := rot / 2
		for i := 0; i < half; i++ {
			ang := float64(pos) * math.Pow(c.RopeTheta, -float64(2*i)/float64(rot))
			a, b := v[i], v[i+half]
			v[i] = a*math.Cos(ang) - b*math.Sin(ang)
			v[i+half] = b*math.Cos(ang) + a*math.Sin(ang)
		}
	}
	heads := saved[fmt.Sprintf("heads/%d", l)]
	for b := 0; b < B; b++ {
		var ks, vs [][]float64
		for tt := 0; tt < T; tt++ {
			k := proj(wk, g, b*T+tt)
			rope(k, tt)
			ks = append(ks, k)
			vs = append(vs, proj(wv, g, b*T+tt))
		}
		for i := 0; i < T; i++ {
			q := proj(wq, h, b*T+i)
			rope(q, i)
			for d, o := range attendByHand(q, ks[:i+1], vs[:i+1]) {
				got := heads[(b*T+i)*qd+h*hd+d]
				if math.Abs(o-float64(got)) > 1e-4 {
					t.Fatalf("head %d of layer %d, seq %d pos %d dim %d: hook %v, by hand %v", h, l, b, i, d, got, o)
				}
			}
		}
	}
}

// attendByHand is one query's attention output in float64: softmax of
// q·k/√head_dim over the visible keys ks, weighting their values vs.
func attendByHand(q []float64, ks, vs [][]float64) []float64 {
	sc := make([]float64, len(ks))
	mx := math.Inf(-1)
	for j, k := range ks {
		for d := range q {
			sc[j] += q[d] * k[d]
		}
		sc[j] /= math.Sqrt(float64(len(q)))
		mx = math.Max(mx, sc[j])
	}
	var z float64
	for j := range sc {
		sc[j] = math.Exp(sc[j] - mx)
		z += sc[j]
	}
	out := make([]float64, len(q))
	for d := range out {
		for j := range sc {
			out[d] += sc[j] / z * vs[j][d]
		}
	}
	return out
}

// dropLayer returns a copy of src without layer drop, later layers renumbered.
func dropLayer(t *testing.T, cfg *Config, src TensorSource, drop int) (*Config, *MemSource) {
	t.Helper()
	mem, err := LoadMem(src)
	if err != nil {
		t.Fatal(err)
	}
	out := NewMemSource()
	for _, n := range mem.Names() {
		data, info, _ := mem.Get(n)
		var l int
		var rest string
		if _, err := fmt.Sscanf(n, "model.layers.%d.", &l); err == nil {
			rest = strings.TrimPrefix(n, LayerPrefix(l))
			if l == drop {
				continue
			}
			if l > drop {
				l--
			}
			info.Name = LayerPrefix(l) + rest
		}
		if err := out.Set(info, data); err != nil {
			t.Fatal(err)
		}
	}
	c2 := *cfg
	c2.NumLayers--
	return &c2, out
}

func TestSkipLayerEqualsRemovedLayer(t *testing.T) {
	for _, name := range []string{"nemotron-headdim-sharded", "llama-linear-bias-f16", "qwen2-gqa", "qwen3-headdim"} {
		for _, mode := range []WeightMode{WeightsResident, WeightsStreaming} {
			m, err := Load(caseDir(name), Options{Weights: mode})
			if err != nil {
				t.Fatal(err)
			}
			rc := readRef(t, caseDir(name))
			cfg2, src2 := dropLayer(t, m.Cfg, m.Source(), 1)
			m2, err := New(cfg2, src2, Options{Weights: mode})
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.Forward(rc.Batch, &ForwardOptions{SkipLayers: []int{1}})
			if err != nil {
				t.Fatal(err)
			}
			b, err := m2.Forward(rc.Batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			full, _ := m.Forward(rc.Batch, nil)
			var diffFull float64
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("%s %v: skip-layer logit %d = %v, model without the layer %v", name, mode, i, a[i], b[i])
				}
				diffFull = math.Max(diffFull, math.Abs(float64(a[i]-full[i])))
			}
			if diffFull < 1e-3 {
				t.Fatalf("%s: skipping a layer changed nothing (max %g): the test cannot fail", name, diffFull)
			}
			if _, err := m.Forward(rc.Batch, &ForwardOptions{SkipLayers: []int{9}}); err == nil {
				t.Fatal("an out-of-range skip layer must fail")
			}
			m.Close()
		}
	}
}

func TestForwardErrors(t *testing.T) {
	m, err := Load(goldenDir("llama-tiny"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cases := []struct {
		ids    [][]int
		reason string
	}{
		{nil, "empty batch"},
		{[][]int{{1, 2}, {3}}, "ragged batch"},
		{[][]int{{1, 256}}, "id past the vocabulary"},
		{[][]int{{-1}}, "negative id"},
	}
	for _, c := range cases {
		if _, err := m.Forward(c.ids, nil); err == nil {
			t.Errorf("%s: no error", c.reason)
		}
	}
	if _, _, err := SequenceNLL([]float32{1, 2}, []int{0}); err == nil {
		t.Error("NLL of one token must fail")
	}
}

// The attention-heads hook (what head importance aggregates) on qwen3 with
// attention biases and a window: one head recomputed by hand from the
// attn-norm hook — biased q/k/v projections, q_norm/k_norm over head_dim,
// full RoPE, softmax over the 6 visible keys.
func TestHooksQwen3HeadByHand(t *testing.T) {
	name := "qwen3-bias-window"
	m, err := Load(caseDir(name), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := m.Cfg
	ids := readRef(t, caseDir(name)).Batch
	B, T, H, hd, qd := len(ids), len(ids[0]), c.HiddenSize, c.HeadDim, c.QDim()
	l, h := 1, 3
	g := h / (c.NumHeads / c.NumKVHeads)
	var x, heads []float32
	hk := &Hooks{
		AttnNorm: func(layer, _, _ int, v []float32) {
			if layer == l {
				x = append([]float32(nil), v...)
			}
		},
		AttnHeads: func(layer, _, _ int, v []float32) {
			if layer == l {
				heads = append([]float32(nil), v...)
			}
		},
	}
	if _, err := m.Forward(ids, &ForwardOptions{Hooks: hk}); err != nil {
		t.Fatal(err)
	}
	p := LayerPrefix(l) + "self_attn."
	read := func(n string) []float32 {
		v, err := m.readTensor(p + n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	wq, wk, wv := read("q_proj.weight"), read("k_proj.weight"), read("v_proj.weight")
	bq, bk, bv := read("q_proj.bias"), read("k_proj.bias"), read("v_proj.bias")
	nq, nk := read("q_norm.weight"), read("k_norm.weight")
	proj := func(w, bias []float32, head, r int) []float64 {
		out := make([]float64, hd)
		for d := range out {
			out[d] = float64(bias[head*hd+d])
			for j := 0; j < H; j++ {
				out[d] += float64(x[r*H+j]) * float64(w[(head*hd+d)*H+j])
			}
		}
		return out
	}
	headNorm := func(v []float64, w []float32) {
		var ss float64
		for _, e := range v {
			ss += e * e
		}
		rs := 1 / math.Sqrt(ss/float64(hd)+c.NormEps)
		for i := range v {
			v[i] *= rs * float64(w[i])
		}
	}
	rope := func(v []float64, pos int) {
		half := hd / 2
		for i := 0; i < half; i++ {
			ang := float64(pos) * math.Pow(c.RopeTheta, -float64(2*i)/float64(hd))
			a, b := v[i], v[i+half]
			v[i] = a*math.Cos(ang) - b*math.Sin(ang)
			v[i+half] = b*math.Cos(ang) + a*math.Sin(ang)
		}
	}
	if c.SlidingWindow != 6 {
		t.Fatalf("window %d, want 6", c.SlidingWindow)
	}
	var worst float64
	for b := 0; b < B; b++ {
		var ks, vs [][]float64
		for tt := 0; tt < T; tt++ {
			k := proj(wk, bk, g, b*T+tt)
			headNorm(k, nk)
			rope(k, tt)
			ks = append(ks, k)
			vs = append(vs, proj(wv, bv, g, b*T+tt))
		}
		for i := 0; i < T; i++ {
			q := proj(wq, bq, h, b*T+i)
			headNorm(q, nq)
			rope(q, i)
			lo := max(0, i-c.SlidingWindow+1)
			for d, o := range attendByHand(q, ks[lo:i+1], vs[lo:i+1]) {
				worst = math.Max(worst, math.Abs(o-float64(heads[(b*T+i)*qd+h*hd+d])))
			}
		}
	}
	t.Logf("max |hook − by hand| = %.2g", worst)
	if worst > 1e-4 {
		t.Fatalf("head %d of layer %d differs from the by-hand attention by %.3g", h, l, worst)
	}
}
