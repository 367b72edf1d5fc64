package distill

import (
	"fmt"
	"math"
	"slices"

	"github.com/minitron-dev/minitron/model"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Param is one trainable tensor of the student, stored under its Hugging
// Face name. Data is a window into the student's single parameter arena.
type Param struct {
	Name    string
	Shape   []int
	Data    []float32
	NoDecay bool // norms, biases and embeddings (excluded from weight decay on request)
	Aux     bool // trained with the student but not part of its checkpoint (the intermediate-loss projection)

	node *G.Node
	grad *G.Node
}

// Grad is the parameter's gradient from the last training micro-step.
func (p *Param) Grad() []float32 { return f32(p.grad.Value()) }

// Student is a decoder's training graph: gorgonia nodes for every parameter,
// the forward pass built from the custom ops of this package, the backward
// pass from gorgonia's symbolic differentiation, compiled into a tape
// machine. It trains on micro-batches of Batch sequences of Seq tokens.
type Student struct {
	Cfg        *model.Config
	arch       *model.Arch
	Batch, Seq int
	Params     []*Param
	arena      []float32 // every parameter, contiguous
	byName     map[string]*Param

	g      *G.ExprGraph
	vm     G.VM // forward + backward
	evalVM G.VM // forward only
	loss   *G.Node
	logits []float32 // logits buffer (holds the logits' gradient after a training step)
	st     *stepState
}

// newStudent builds the training graph of arch for micro-batches of batch
// sequences of seq tokens, with initial weights from src (every tensor of
// TrainTensors); NewEngine has checked that arch is trainable. chunk > 0
// fuses the head and the loss over chunks of that many rows
// (headLossNode); 0 keeps the logits whole.
func newStudent(arch *model.Arch, src model.TensorSource, batch, seq int, losses Losses, chunk int) (*Student, error) {
	if err := losses.Validate(); err != nil {
		return nil, err
	}
	if len(losses.Intermediate) > 0 && losses.TeacherHidden <= 0 {
		return nil, fmt.Errorf("intermediate-state loss without the teacher's hidden size")
	}
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("micro-batch %d and sequence length %d must be positive", batch, seq)
	}
	cfg := arch.Cfg
	s := &Student{Cfg: cfg, arch: arch, Batch: batch, Seq: seq, byName: map[string]*Param{}}
	infos := TrainTensors(arch, losses)
	_, total := arenaOffsets(infos)
	s.arena = make([]float32, total)
	off := 0
	for _, ti := range infos {
		n := ti.NumElements()
		p := &Param{Name: ti.Name, Shape: ti.Shape, Data: s.arena[off : off+n : off+n], Aux: ti.Name == ISProjName}
		off += n
		p.NoDecay = model.NoDecay(ti)
		got, ok := src.Info(ti.Name)
		if !ok {
			return nil, fmt.Errorf("student weights: missing tensor %q", ti.Name)
		}
		if !slices.Equal(got.Shape, ti.Shape) {
			return nil, fmt.Errorf("student weights: tensor %q has shape %v, config wants %v", ti.Name, got.Shape, ti.Shape)
		}
		if err := src.ReadF32(ti.Name, p.Data); err != nil {
			return nil, fmt.Errorf("student weights: %w", err)
		}
		s.Params = append(s.Params, p)
		s.byName[p.Name] = p
	}
	rows := batch * seq
	s.st = &stepState{ids: make([]int, rows), targets: make([]int, rows), losses: losses,
		rowLoss: make([]float32, rows), gradScale: 1 / float32(rows), train: true}
	if chunk > 0 && chunk < rows {
		s.st.chunk = chunk
	}
	if err := s.build(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Student) build() error {
	cfg := s.Cfg
	g := G.NewGraph()
	s.g = g
	for _, p := range s.Params {
		t := tensor.New(tensor.WithBacking(p.Data), tensor.WithShape(p.Shape...))
		if len(p.Shape) == 1 {
			p.node = G.NewVector(g, tensor.Float32, G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(t))
		} else {
			p.node = G.NewMatrix(g, tensor.Float32, G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(t))
		}
	}
	P := func(name string) *G.Node {
		if p := s.byName[name]; p != nil {
			return p.node
		}
		return nil
	}
	geom, err := s.attnGeom()
	if err != nil {
		return err
	}
	gb := &graphBackend{s: s, P: P, rows: s.Batch * s.Seq, geom: geom}
	logits, err := model.Decoder(s.arch, model.Backend[*G.Node](gb), nil, false)
	if err != nil {
		return err
	}
	H, V, rows := cfg.HiddenSize, cfg.VocabSize, gb.rows
	hidden := gb.hidden
	if s.st.chunk > 0 {
		s.loss = logits // the fused head and loss (graphBackend.Logits)
	} else {
		s.logits = logits.Op().(*kop).data()
		if s.loss, err = lossNode("loss", logits, s.logits, s.st, rows, V); err != nil {
			return err
		}
	}
	if pairs := s.st.losses.Intermediate; len(pairs) > 0 {
		hs := make([]*G.Node, len(pairs))
		for i, pr := range pairs {
			if pr.Student < 0 || pr.Student >= len(hidden) {
				return fmt.Errorf("intermediate pair: student layer %d outside 0..%d", pr.Student, cfg.NumLayers)
			}
			hs[i] = hidden[pr.Student]
		}
		Ht := s.st.losses.TeacherHidden
		s.st.isTeacher = make([][]float32, len(pairs))
		for i := range s.st.isTeacher {
			s.st.isTeacher[i] = make([]float32, rows*Ht)
		}
		is, err := isLossNode(hs, P(ISProjName), s.st, rows, H, Ht)
		if err != nil {
			return err
		}
		if s.loss, err = combineNode(s.loss, is, s.st); err != nil {
			return err
		}
	}
	wrt := make(G.Nodes, len(s.Params))
	for i, p := range s.Params {
		wrt[i] = p.node
	}
	eval := g.SubgraphRoots(s.loss)
	grads, err := G.Grad(s.loss, wrt...)
	if err != nil {
		return fmt.Errorf("differentiating the student graph: %w", err)
	}
	for i, p := range s.Params {
		p.grad = grads[i]
	}
	s.vm = G.NewTapeMachine(g)
	s.evalVM = G.NewTapeMachine(eval)
	return nil
}

// graphBackend builds the student's forward pass as graph nodes, step by
// step as model.Decoder calls it; the backward pass is gorgonia's
// differentiation of these nodes.
type graphBackend struct {
	s      *Student
	P      func(name string) *G.Node
	rows   int
	geom   *attnGeom
	hidden []*G.Node // post-norm hidden state of each layer, then the final norm (the intermediate loss's)
}

func (g *graphBackend) Embed() (*G.Node, error) {
	c := g.s.Cfg
	return embeddingNode("embed", g.P(model.EmbedTensor), g.s.st, c.VocabSize, c.HiddenSize)
}

func (g *graphBackend) Norm(l int, st model.Step, x *G.Node, w, b string) (*G.Node, error) {
	name := map[model.Step]string{model.StepAttnNorm: "norm1", model.StepMLPNorm: "norm2"}[st]
	if st == model.StepFinalNorm {
		name = "normf"
	} else {
		name = fmt.Sprintf("L%d.%s", l, name)
	}
	var bias *G.Node
	if b != "" {
		bias = g.P(b)
	}
	c := g.s.Cfg
	h, err := normNode(name, x, g.P(w), bias, g.rows, c.HiddenSize, float32(c.NormEps), g.s.arch.RMSNorm)
	if st != model.StepMLPNorm {
		g.hidden = append(g.hidden, h)
	}
	return h, err
}

// linear is linearNode over the named weights and biases ("" for none;
// shapes from the student's parameters).
func (g *graphBackend) linear(name string, x *G.Node, ws, bs []string) (*G.Node, error) {
	nodes, outs := make([]*G.Node, len(ws)), make([]int, len(ws))
	var biases []*G.Node
	for i, w := range ws {
		p := g.s.byName[w]
		nodes[i], outs[i] = p.node, p.Shape[0]
		if i < len(bs) && bs[i] != "" {
			if biases == nil {
				biases = make([]*G.Node, len(ws))
			}
			biases[i] = g.P(bs[i])
		}
	}
	return linearNode(name, x, g.rows, g.s.byName[ws[0]].Shape[1], nodes, biases, outs)
}

func (g *graphBackend) Linear(l int, st model.Step, x *G.Node, ws, bs []string) (*G.Node, error) {
	name := "qkv"
	if st == model.StepMLPIn {
		name = map[bool]string{true: "gateup", false: "up"}[len(ws) == 2]
	}
	return g.linear(fmt.Sprintf("L%d.%s", l, name), x, ws, bs)
}

// QKNorm is headNormNode over the fused q|k|v rows.
func (g *graphBackend) QKNorm(l int, qkv *G.Node, q, k string) (*G.Node, error) {
	c := g.s.Cfg
	return headNormNode(fmt.Sprintf("L%d.qknorm", l), qkv, g.P(q), g.P(k), g.rows, c.QDim()+2*c.KVDim(),
		c.NumHeads, c.QDim(), c.NumKVHeads, c.HeadDim, float32(c.NormEps))
}

func (g *graphBackend) Attention(l int, qkv *G.Node) (*G.Node, error) {
	return attentionNode(fmt.Sprintf("L%d.attn", l), qkv, g.geom)
}

func (g *graphBackend) Activation(l int, u *G.Node) (*G.Node, error) {
	c := g.s.Cfg
	return actNode(fmt.Sprintf("L%d.act", l), u, g.s.arch.Act, c.GatedMLP(), g.rows, c.IntermediateSize)
}

func (g *graphBackend) AddLinear(l int, st model.Step, x, y *G.Node, w, b string) (*G.Node, error) {
	lin, res := "o", "res1"
	if st == model.StepMLPOut {
		lin, res = "down", "res2"
	}
	o, err := g.linear(fmt.Sprintf("L%d.%s", l, lin), y, []string{w}, []string{b})
	if err != nil {
		return nil, err
	}
	return residualNode(fmt.Sprintf("L%d.%s", l, res), x, o, g.rows, g.s.Cfg.HiddenSize)
}

func (g *graphBackend) Logits(h *G.Node, w string) (*G.Node, error) {
	if g.s.st.chunk > 0 {
		c := g.s.Cfg
		return headLossNode("lm_head_loss", h, g.P(w), g.s.st, g.rows, c.HiddenSize, c.VocabSize)
	}
	return g.linear("lm_head", h, []string{w}, nil)
}

func (s *Student) attnGeom() (*attnGeom, error) {
	cfg := s.Cfg
	a := &attnGeom{batch: s.Batch, seq: s.Seq, heads: cfg.NumHeads, kvHeads: cfg.NumKVHeads,
		headDim: cfg.HeadDim, rot: cfg.RotaryDim(), window: cfg.SlidingWindow}
	a.pos = make([]int, s.Batch*s.Seq)
	for i := range a.pos {
		a.pos[i] = i % s.Seq
	}
	if a.rot > 0 {
		a.cos, a.sin = s.arch.RopeTables(s.Seq)
		a.negSin = make([]float32, len(a.sin))
		for i, v := range a.sin {
			a.negSin[i] = -v
		}
	}
	return a, nil
}

// setBatch loads a micro-batch: tokens [Batch][Seq+1]; inputs are the first
// Seq tokens of each row, targets the last Seq.
func (s *Student) setBatch(tokens [][]int32) error {
	return SplitMicroBatch(tokens, s.Batch, s.Seq, s.Cfg.VocabSize, s.st.ids, s.st.targets)
}

// TrainStep runs forward and backward on one micro-batch and returns its
// loss; the gradients (already scaled by gradScale) are then in each
// Param.Grad.
func (s *Student) trainStep(tokens [][]int32) (float32, error) {
	if err := s.setBatch(tokens); err != nil {
		return 0, err
	}
	s.st.train = true
	defer s.vm.Reset()
	if err := s.vm.RunAll(); err != nil {
		return 0, err
	}
	return lossValue(s.loss), nil
}

// evalStep runs the forward pass only and returns the loss mix (the metrics
// stay in s.st).
func (s *Student) evalStep(tokens [][]int32) (float32, error) {
	if err := s.setBatch(tokens); err != nil {
		return 0, err
	}
	s.st.train = false
	defer func() { s.st.train = true; s.evalVM.Reset() }()
	if err := s.evalVM.RunAll(); err != nil {
		return 0, err
	}
	return lossValue(s.loss), nil
}

func lossValue(n *G.Node) float32 {
	v := n.Value()
	if v == nil {
		return float32(math.NaN())
	}
	return scalarOf(v)
}

// NumParams is the number of trainable scalars.
func (s *Student) NumParams() int { return len(s.arena) }

// Close releases the tape machines.
func (s *Student) Close() error {
	if s.vm != nil {
		s.vm.Close()
	}
	if s.evalVM != nil {
		s.evalVM.Close()
	}
	return nil
}
