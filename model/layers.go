package model

// Step names a step of a decoder layer (and the final norm), so that a
// Backend can tell its calls apart: which buffers to use, which hooks to
// call.
type Step int

const (
	StepAttnNorm   Step = iota // input_layernorm of the residual stream
	StepQKV                    // the q|k|v projections
	StepQKNorm                 // qwen3: RMSNorm of every q and k head (q_norm, k_norm)
	StepAttention              // RoPE, scaled masked softmax, ·V (GQA)
	StepAttnOut                // x + att·W_oᵀ
	StepMLPNorm                // post_attention_layernorm
	StepMLPIn                  // the gate|up projections (up alone for an ungated MLP)
	StepActivation             // act(gate)·up, or act(up)
	StepMLPOut                 // x + a·W_downᵀ
	StepFinalNorm              // model.norm
)

// Backend computes a decoder's steps over its own values: gorgonia nodes
// in the CPU training graph, device buffers on the GPU. Decoder and Layer
// call it in the architecture's order, which is defined once, here.
type Backend[T any] interface {
	// Embed looks up the input tokens' embeddings: the residual stream.
	Embed() (T, error)
	// Norm normalises x with weight w and bias b ("" when there is none),
	// as Arch.RMSNorm says.
	Norm(l int, s Step, x T, w, b string) (T, error)
	// Linear is x·Wᵀ+b for each weight of ws and bias of bs ("" when it
	// has none), their outputs side by side.
	Linear(l int, s Step, x T, ws, bs []string) (T, error)
	// QKNorm applies RMSNorm over head_dim to every query head (weight q)
	// and key head (weight k) of the fused q|k|v rows; only architectures
	// with Config.QKNorm call it.
	QKNorm(l int, qkv T, q, k string) (T, error)
	// Attention is layer l's attention over the fused q|k|v rows.
	Attention(l int, qkv T) (T, error)
	// Activation is the MLP's activation over StepMLPIn's output.
	Activation(l int, u T) (T, error)
	// AddLinear is the residual update x + y·Wᵀ + b (b "" when there is
	// no bias).
	AddLinear(l int, s Step, x, y T, w, b string) (T, error)
	// Logits is h·Wᵀ with the head's weight (Arch.HeadTensor).
	Logits(h T, w string) (T, error)
}

// LayerWeights are the weights of decoder layer l. A bias or norm the
// architecture lacks is "".
type LayerWeights struct {
	AttnNorm, AttnNormBias     string
	Q, K, V, O                 string
	QBias, KBias, VBias, OBias string
	QNorm, KNorm               string // qwen3's per-head RMSNorm weights
	MLPNorm, MLPNormBias       string
	Gate, Up, Down             string // Gate is "" for an ungated MLP
	GateBias, UpBias, DownBias string
}

// Layer returns layer l's tensor names; biases and norms are named only
// when the architecture has them.
func (a *Arch) Layer(l int) LayerWeights {
	p := LayerPrefix(l)
	t := LayerWeights{
		AttnNorm: p + "input_layernorm.weight", MLPNorm: p + "post_attention_layernorm.weight",
		Q: p + "self_attn.q_proj.weight", K: p + "self_attn.k_proj.weight", V: p + "self_attn.v_proj.weight",
		O: p + "self_attn.o_proj.weight", Up: p + "mlp.up_proj.weight", Down: p + "mlp.down_proj.weight",
	}
	if a.NormBias {
		t.AttnNormBias, t.MLPNormBias = p+"input_layernorm.bias", p+"post_attention_layernorm.bias"
	}
	c := a.Cfg
	if c.GatedMLP() {
		t.Gate = p + "mlp.gate_proj.weight"
	}
	if c.QKVBias() {
		t.QBias, t.KBias, t.VBias = p+"self_attn.q_proj.bias", p+"self_attn.k_proj.bias", p+"self_attn.v_proj.bias"
	}
	if c.OBias() {
		t.OBias = p + "self_attn.o_proj.bias"
	}
	if c.QKNorm() {
		t.QNorm, t.KNorm = p+"self_attn.q_norm.weight", p+"self_attn.k_norm.weight"
	}
	if c.MLPBias {
		t.UpBias, t.DownBias = p+"mlp.up_proj.bias", p+"mlp.down_proj.bias"
		if c.GatedMLP() {
			t.GateBias = p + "mlp.gate_proj.bias"
		}
	}
	return t
}

// FinalNorm names the final norm's weight and bias ("" without one).
func (a *Arch) FinalNorm() (w, b string) {
	if a.NormBias {
		return "model.norm.weight", "model.norm.bias"
	}
	return "model.norm.weight", ""
}

// Layer runs decoder layer l of a on the residual stream x: pre-norm
// attention and MLP blocks, each added back to the stream.
func Layer[T any](a *Arch, b Backend[T], l int, x T) (T, error) {
	w := a.Layer(l)
	var zero T
	h, err := b.Norm(l, StepAttnNorm, x, w.AttnNorm, w.AttnNormBias)
	if err != nil {
		return zero, err
	}
	qkv, err := b.Linear(l, StepQKV, h, []string{w.Q, w.K, w.V}, []string{w.QBias, w.KBias, w.VBias})
	if err != nil {
		return zero, err
	}
	if w.QNorm != "" {
		if qkv, err = b.QKNorm(l, qkv, w.QNorm, w.KNorm); err != nil {
			return zero, err
		}
	}
	att, err := b.Attention(l, qkv)
	if err != nil {
		return zero, err
	}
	if x, err = b.AddLinear(l, StepAttnOut, x, att, w.O, w.OBias); err != nil {
		return zero, err
	}
	h2, err := b.Norm(l, StepMLPNorm, x, w.MLPNorm, w.MLPNormBias)
	if err != nil {
		return zero, err
	}
	in, inBias := []string{w.Up}, []string{w.UpBias}
	if w.Gate != "" {
		in, inBias = []string{w.Gate, w.Up}, []string{w.GateBias, w.UpBias}
	}
	u, err := b.Linear(l, StepMLPIn, h2, in, inBias)
	if err != nil {
		return zero, err
	}
	act, err := b.Activation(l, u)
	if err != nil {
		return zero, err
	}
	return b.AddLinear(l, StepMLPOut, x, act, w.Down, w.DownBias)
}

// Decoder runs a's whole forward pass on b: the embedding, every layer not
// in skip and, unless noLogits, the final norm and the logits. It returns
// the logits, or the residual stream after the last layer when noLogits.
func Decoder[T any](a *Arch, b Backend[T], skip func(l int) bool, noLogits bool) (T, error) {
	var zero T
	x, err := b.Embed()
	if err != nil {
		return zero, err
	}
	for l := 0; l < a.Cfg.NumLayers; l++ {
		if skip != nil && skip(l) {
			continue // identity: the stream goes on unchanged
		}
		if x, err = Layer(a, b, l, x); err != nil {
			return zero, err
		}
	}
	if noLogits {
		return x, nil
	}
	w, bias := a.FinalNorm()
	h, err := b.Norm(a.Cfg.NumLayers, StepFinalNorm, x, w, bias)
	if err != nil {
		return zero, err
	}
	return b.Logits(h, a.HeadTensor())
}
