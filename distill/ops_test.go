package distill

import (
	"math"
	"math/rand"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// dotLoss is a test-only op: L = Σ y·R for a fixed random R, whose gradient
// is R. It turns any op's output into a scalar so its backward can be
// checked against finite differences.
func dotLoss(y *G.Node, r []float32) (*G.Node, error) {
	fw := newOp("dot", 1)
	fw.do = func(v []G.Value) (float32, error) {
		var s float64
		for i, x := range f32(v[0]) {
			s += float64(x) * float64(r[i])
		}
		return float32(s), nil
	}
	fw.diffWRT = []bool{true}
	fw.diff = func(_ G.Nodes, out, grad *G.Node) (G.Nodes, error) {
		g := newOp("dot.grad", 2, y.Shape()...)
		d := g.data()
		g.do = func(v []G.Value) (float32, error) {
			s := scalarOf(v[1])
			for i, x := range r {
				d[i] = x * s
			}
			return 0, nil
		}
		n, err := apply(g, out, grad)
		return G.Nodes{n}, err
	}
	return apply(fw, y)
}

type opCase struct {
	name   string
	reason string
	shapes [][]int // input shapes
	// build adds the op under test over the inputs and returns its output
	// (or a scalar loss when scalar is set).
	build  func(in []*G.Node) (*G.Node, error)
	scalar bool
	tol    float64
}

func randSlice(rng *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64()) * scale
	}
	return s
}

// checkOp compares every input's analytic gradient with central finite
// differences at up to 24 random coordinates.
func checkOp(t *testing.T, c opCase) {
	t.Helper()
	rng := rand.New(rand.NewSource(7))
	g := G.NewGraph()
	ins := make([]*G.Node, len(c.shapes))
	vals := make([][]float32, len(c.shapes))
	for i, sh := range c.shapes {
		n := 1
		for _, d := range sh {
			n *= d
		}
		vals[i] = randSlice(rng, n, 0.7)
		tv := tensor.New(tensor.WithBacking(vals[i]), tensor.WithShape(sh...))
		if len(sh) == 1 {
			ins[i] = G.NewVector(g, tensor.Float32, G.WithShape(sh...), G.WithValue(tv), G.WithName(string(rune('a'+i))))
		} else {
			ins[i] = G.NewMatrix(g, tensor.Float32, G.WithShape(sh...), G.WithValue(tv), G.WithName(string(rune('a'+i))))
		}
	}
	out, err := c.build(ins)
	if err != nil {
		t.Fatal(err)
	}
	loss := out
	if !c.scalar {
		if loss, err = dotLoss(out, randSlice(rng, out.Shape().TotalSize(), 1)); err != nil {
			t.Fatal(err)
		}
	}
	grads, err := G.Grad(loss, ins...)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	run := func() float64 {
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		v := float64(scalarOf(loss.Value()))
		vm.Reset()
		return v
	}
	run()
	analytic := make([][]float32, len(ins))
	for i, gn := range grads {
		analytic[i] = append([]float32(nil), f32(gn.Value())...)
	}
	tol := c.tol
	if tol == 0 {
		tol = 2e-2
	}
	for i := range ins {
		for k := 0; k < 24; k++ {
			j := rng.Intn(len(vals[i]))
			x0 := vals[i][j]
			h := float32(1e-2) * max(1, float32(math.Abs(float64(x0))))
			vals[i][j] = x0 + h
			lp := run()
			vals[i][j] = x0 - h
			lm := run()
			vals[i][j] = x0
			num := (lp - lm) / float64(2*h)
			an := float64(analytic[i][j])
			if math.Abs(num-an) > tol*(1+math.Abs(num)) {
				t.Errorf("%s (%s): input %d coord %d: analytic %.6g, finite difference %.6g", c.name, c.reason, i, j, an, num)
			}
		}
	}
}

func TestOpGradients(t *testing.T) {
	const rows, dim = 12, 16
	st := &stepState{ids: []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}, targets: []int{1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9},
		rowLoss: make([]float32, rows), gradScale: 1.0 / rows, train: true}
	teacher := randSlice(rand.New(rand.NewSource(3)), rows*10, 2)
	geom := func(heads, kv, hd, rot, window int) *attnGeom {
		a := &attnGeom{batch: 2, seq: 6, heads: heads, kvHeads: kv, headDim: hd, rot: rot, window: window}
		a.pos = make([]int, 12)
		for i := range a.pos {
			a.pos[i] = i % 6
		}
		if rot > 0 {
			inv, _ := kernels.RopeInvFreq(rot, 10000, nil)
			a.cos, a.sin = kernels.RopeTables(inv, 6)
			a.negSin = make([]float32, len(a.sin))
			for i, v := range a.sin {
				a.negSin[i] = -v
			}
		}
		return a
	}
	cases := []opCase{
		{name: "linear", reason: "one weight", shapes: [][]int{{rows, dim}, {8, dim}},
			build: func(in []*G.Node) (*G.Node, error) { return linearNode("lin", in[0], rows, dim, in[1:], nil, []int{8}) }},
		{name: "linear-fused", reason: "q|k|v sharing an input", shapes: [][]int{{rows, dim}, {8, dim}, {4, dim}, {4, dim}},
			build: func(in []*G.Node) (*G.Node, error) {
				return linearNode("qkv", in[0], rows, dim, in[1:], nil, []int{8, 4, 4})
			}},
		{name: "linear-fused-bias", reason: "qwen2: q|k|v with biases; each bias's gradient is its block's column sum",
			shapes: [][]int{{rows, dim}, {8, dim}, {4, dim}, {4, dim}, {8}, {4}, {4}},
			build: func(in []*G.Node) (*G.Node, error) {
				return linearNode("qkv", in[0], rows, dim, in[1:4], in[4:], []int{8, 4, 4})
			}},
		{name: "linear-some-bias", reason: "gate without bias beside up with one (a bias list with holes)",
			shapes: [][]int{{rows, dim}, {6, dim}, {5, dim}, {5}},
			build: func(in []*G.Node) (*G.Node, error) {
				return linearNode("gateup", in[0], rows, dim, in[1:3], []*G.Node{nil, in[3]}, []int{6, 5})
			}},
		{name: "head-rmsnorm", reason: "qwen3 q_norm/k_norm: 4 query heads, 2 key heads of 4 dims, values untouched",
			shapes: [][]int{{rows, (4 + 2*2) * 4}, {4}, {4}},
			build: func(in []*G.Node) (*G.Node, error) {
				return headNormNode("qk", in[0], in[1], in[2], rows, (4+2*2)*4, 4, 4*4, 2, 4, 1e-6)
			}},
		{name: "layernorm1p", reason: "nemotron norm with bias", shapes: [][]int{{rows, dim}, {dim}, {dim}},
			build: func(in []*G.Node) (*G.Node, error) {
				return normNode("ln", in[0], in[1], in[2], rows, dim, 1e-5, false)
			}},
		{name: "layernorm1p-nobias", reason: "NeMo export without norm bias", shapes: [][]int{{rows, dim}, {dim}},
			build: func(in []*G.Node) (*G.Node, error) {
				return normNode("ln", in[0], in[1], nil, rows, dim, 1e-5, false)
			}},
		{name: "rmsnorm", reason: "llama norm", shapes: [][]int{{rows, dim}, {dim}},
			build: func(in []*G.Node) (*G.Node, error) { return normNode("rms", in[0], in[1], nil, rows, dim, 1e-6, true) }},
		{name: "attention-gqa-partial-rope", reason: "nemotron: 4 heads on 2 KV heads, half the head dim rotates",
			shapes: [][]int{{rows, (4 + 2*2) * 8}},
			build:  func(in []*G.Node) (*G.Node, error) { return attentionNode("att", in[0], geom(4, 2, 8, 4, 0)) }},
		{name: "attention-full-rope", reason: "llama: full rotation, MHA", shapes: [][]int{{rows, 3 * 2 * 8}},
			build: func(in []*G.Node) (*G.Node, error) { return attentionNode("att", in[0], geom(2, 2, 8, 8, 0)) }},
		{name: "attention-sliding", reason: "mistral sliding window 3", shapes: [][]int{{rows, (2 + 2) * 8}},
			build: func(in []*G.Node) (*G.Node, error) { return attentionNode("att", in[0], geom(2, 1, 8, 8, 3)) }},
		{name: "relu2", reason: "nemotron MLP activation", shapes: [][]int{{rows, dim}},
			build: func(in []*G.Node) (*G.Node, error) {
				return actNode("act", in[0], kernels.ReLU2, false, rows, dim)
			}},
		{name: "swiglu", reason: "llama gated MLP", shapes: [][]int{{rows, 2 * dim}},
			build: func(in []*G.Node) (*G.Node, error) { return actNode("act", in[0], kernels.SiLU, true, rows, dim) }},
		{name: "residual", reason: "gradient flows to both branches", shapes: [][]int{{rows, dim}, {rows, dim}},
			build: func(in []*G.Node) (*G.Node, error) { return residualNode("res", in[0], in[1], rows, dim) }},
		{name: "embedding", reason: "repeated ids accumulate", shapes: [][]int{{10, dim}},
			build: func(in []*G.Node) (*G.Node, error) { return embeddingNode("emb", in[0], st, 10, dim) }},
	}
	for _, l := range []struct {
		name   string
		losses Losses
	}{
		{"ce", Losses{CE: 1}},
		{"kl", Losses{KL: 1}},
		{"kl-tau2", Losses{KL: 1, Temperature: 2}},
		{"reverse-kl", Losses{ReverseKL: 1}},
		{"mix", Losses{CE: 0.3, KL: 1, ReverseKL: 0.5}},
		{"topk", Losses{KL: 1, TopK: 3}},
	} {
		l := l
		cases = append(cases, opCase{name: "loss-" + l.name, reason: "fused loss and its logit gradient", shapes: [][]int{{rows, 10}}, scalar: true,
			build: func(in []*G.Node) (*G.Node, error) {
				s := *st
				s.losses = l.losses
				s.targets = []int{1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9}
				s.teacher = teacher
				if l.losses.TopK > 0 {
					s.topIdx = make([]int32, rows*l.losses.TopK)
					s.topVal = make([]float32, rows*l.losses.TopK)
					kernels.TopK(s.topIdx, s.topVal, teacher, rows, 10, l.losses.TopK)
				}
				// The loss writes its gradient over its input, so it reads
				// a copy made by an identity op (as in the graph, where the
				// logits are the lm_head op's own buffer).
				id, err := residualNode("copy", in[0], in[0], rows, 10)
				if err != nil {
					return nil, err
				}
				half, err := linearNode("half", id, rows, 10, []*G.Node{G.NewMatrix(in[0].Graph(), tensor.Float32, G.WithShape(10, 10), G.WithName("eye"), G.WithValue(eye(10, 0.5)))}, nil, []int{10})
				if err != nil {
					return nil, err
				}
				return lossNode("loss", half, half.Op().(*kop).data(), &s, rows, 10)
			}})
	}
	isSt := &stepState{gradScale: 1.0 / rows, isTeacher: [][]float32{randSlice(rand.New(rand.NewSource(4)), rows*12, 1), randSlice(rand.New(rand.NewSource(5)), rows*12, 1)}}
	// Sequences longer than the kernels' 32-row blocks, with a partial
	// last block.
	long := &attnGeom{batch: 2, seq: 70, heads: 2, kvHeads: 1, headDim: 8, rot: 8}
	long.pos = make([]int, 140)
	for i := range long.pos {
		long.pos[i] = i % 70
	}
	inv, _ := kernels.RopeInvFreq(8, 10000, nil)
	long.cos, long.sin = kernels.RopeTables(inv, 70)
	long.negSin = make([]float32, len(long.sin))
	for i, v := range long.sin {
		long.negSin[i] = -v
	}
	longW := *long
	longW.window = 20
	cases = append(cases,
		opCase{name: "attention-long", reason: "70 tokens: three query blocks", shapes: [][]int{{140, 4 * 8}},
			build: func(in []*G.Node) (*G.Node, error) { return attentionNode("att", in[0], long) }},
		opCase{name: "attention-long-window", reason: "70 tokens, window 20 across blocks", shapes: [][]int{{140, 4 * 8}},
			build: func(in []*G.Node) (*G.Node, error) { return attentionNode("att", in[0], &longW) }})
	cases = append(cases, opCase{name: "intermediate-cosine", reason: "two layer pairs through one shared projection 16→12",
		shapes: [][]int{{rows, dim}, {rows, dim}, {12, dim}}, scalar: true,
		build: func(in []*G.Node) (*G.Node, error) { return isLossNode(in[:2], in[2], isSt, rows, dim, 12) }})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkOp(t, c) })
	}
}

// The dynamic weighting α = L_logits/L_is is a constant for the gradient:
// dL/dL_logits = 1 and dL/dL_is = α (finite differences would see 2·L_logits).
func TestCombineGradientHoldsAlphaConstant(t *testing.T) {
	g := G.NewGraph()
	rng := rand.New(rand.NewSource(1))
	a := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 4), G.WithName("a"), G.WithValue(tensor.New(tensor.WithBacking(randSlice(rng, 12, 1)), tensor.WithShape(3, 4))))
	b := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 4), G.WithName("b"), G.WithValue(tensor.New(tensor.WithBacking(randSlice(rng, 12, 1)), tensor.WithShape(3, 4))))
	ra, rb := randSlice(rng, 12, 1), randSlice(rng, 12, 1)
	for i, v := range f32(b.Value()) { // a positive L_is, as a cosine loss is
		f32(b.Value())[i], rb[i] = float32(math.Abs(float64(v))), float32(math.Abs(float64(rb[i])))
	}
	la, _ := dotLoss(a, ra)
	lb, _ := dotLoss(b, rb)
	st := &stepState{}
	tot, err := combineNode(la, lb, st)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := G.Grad(tot, a, b)
	if err != nil {
		t.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	if err := vm.RunAll(); err != nil {
		t.Fatal(err)
	}
	alpha := float32(st.parts.ISAlpha)
	if want := scalarOf(la.Value()) / scalarOf(lb.Value()); math.Abs(float64(alpha-want)) > 1e-5*math.Abs(float64(want)) {
		t.Fatalf("alpha %v, want %v", alpha, want)
	}
	ga, gb := f32(grads[0].Value()), f32(grads[1].Value())
	for i := range ra {
		if math.Abs(float64(ga[i]-ra[i])) > 1e-6 || math.Abs(float64(gb[i]-alpha*rb[i])) > 1e-5 {
			t.Fatalf("grad %d: (%v, %v), want (%v, %v)", i, ga[i], gb[i], ra[i], alpha*rb[i])
		}
	}
}

func eye(n int, v float32) *tensor.Dense {
	d := make([]float32, n*n)
	for i := 0; i < n; i++ {
		d[i*n+i] = v
	}
	return tensor.New(tensor.WithBacking(d), tensor.WithShape(n, n))
}
