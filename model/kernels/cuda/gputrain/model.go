//go:build minitron_cuda || minitron_cudaemu

package gputrain

import (
	"fmt"
	"slices"
	"strings"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// param is one tensor's window of the parameter arena (and of the
// gradient and moment arenas, which share its layout).
type param struct {
	name    string
	shape   []int
	off, n  int
	noDecay bool // norms, biases, embeddings: as distill.Param.NoDecay
}

// Model is a decoder on the device with the activations of one micro-batch
// of Batch sequences of Seq tokens. Forward keeps what the backward pass
// needs (Trainer); a teacher uses Forward alone.
type Model struct {
	d          *cuda.Device
	Cfg        *model.Config
	Batch, Seq int
	act        kernels.Activation
	rms        bool // RMSNorm (llama/mistral) rather than LayerNorm1P
	normBias   bool
	params     []param
	byName     map[string]int
	W          cuda.Buf // every parameter, contiguous

	// activations, per layer l: xs[l] is the residual stream entering layer
	// l (xs[L] leaves the last one), xmid[l] after the attention residual.
	xs, xmid, h1, h2, qkv, att, u, a []cuda.Buf
	mean1, rstd1, mean2, rstd2       []cuda.Buf
	probs                            []cuda.Buf // [B, nH, T, T] per layer (training only)
	hf, meanf, rstdf, logits         cuda.Buf
	ids, targets, pos, cos, sin      cuda.Buf
	hostIDs, hostTargets             []int32
	owned                            []cuda.Buf
	train                            bool
	// AttnTC runs attention through cuBLAS (Device.AttentionTC, tensor
	// cores; the default) instead of the reference kernel.
	AttnTC bool

	// bf16 GEMMs (EnableBF16): a bf16 shadow of the weights and of every
	// linear layer's input, for cublasGemmEx with f32 accumulation.
	bf16               bool
	WB                 cuda.BF16
	h1b, attb, h2b, ab []cuda.BF16
	hfb                cuda.BF16
	ownedB             []cuda.BF16
}

// NewModel loads the tensors of cfg from src onto the device. train keeps
// the attention probabilities for a backward pass.
func NewModel(d *cuda.Device, cfg *model.Config, src model.TensorSource, batch, seq int, train bool) (*Model, error) {
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("gputrain: micro-batch %d and sequence length %d must be positive", batch, seq)
	}
	if cfg.AttentionBias || cfg.MLPBias {
		return nil, fmt.Errorf("gputrain: %s models with attention/MLP biases are not supported", cfg.Family)
	}
	act, err := kernels.ParseActivation(cfg.HiddenAct)
	if err != nil { // as distill: the family's activation when hidden_act is unknown
		if cfg.Family == model.Nemotron {
			act = kernels.ReLU2
		} else {
			act = kernels.SiLU
		}
	}
	m := &Model{d: d, Cfg: cfg, Batch: batch, Seq: seq, act: act, rms: cfg.Family != model.Nemotron,
		byName: map[string]int{}, train: train, AttnTC: true}
	infos := model.ExpectedTensors(cfg)
	if opt := model.OptionalTensors(cfg); len(opt) > 0 {
		if _, ok := src.Info(opt[0].Name); ok {
			m.normBias = true
			infos = append(infos, opt...)
		}
	}
	total := 0
	for _, ti := range infos {
		n := ti.NumElements()
		m.byName[ti.Name] = len(m.params)
		m.params = append(m.params, param{name: ti.Name, shape: ti.Shape, off: total, n: n,
			noDecay: len(ti.Shape) == 1 || strings.Contains(ti.Name, "embed_tokens")})
		total += n
	}
	ok := false
	defer func() {
		if !ok {
			m.Free()
		}
	}()
	if m.W, err = m.alloc(total); err != nil {
		return nil, err
	}
	host := make([]float32, 0)
	for _, p := range m.params {
		got, found := src.Info(p.name)
		if !found {
			return nil, fmt.Errorf("gputrain: weights: missing tensor %q", p.name)
		}
		if !slices.Equal(got.Shape, p.shape) {
			return nil, fmt.Errorf("gputrain: weights: tensor %q has shape %v, config wants %v", p.name, got.Shape, p.shape)
		}
		if cap(host) < p.n {
			host = make([]float32, p.n)
		}
		host = host[:p.n]
		if err := src.ReadF32(p.name, host); err != nil {
			return nil, fmt.Errorf("gputrain: weights: %w", err)
		}
		if err := d.CopyFrom(m.W.Slice(p.off, p.off+p.n), host); err != nil {
			return nil, err
		}
	}
	if err := m.allocActivations(); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

func (m *Model) alloc(n int) (cuda.Buf, error) {
	b, err := m.d.Alloc(n)
	if err != nil {
		return b, err
	}
	m.owned = append(m.owned, b)
	return b, nil
}

// Free returns every buffer to the device's pool.
func (m *Model) Free() {
	for _, b := range m.owned {
		m.d.Free(b)
	}
	for _, b := range m.ownedB {
		m.d.FreeBF16(b)
	}
	m.owned, m.ownedB = nil, nil
}

func (m *Model) allocB(n int) (cuda.BF16, error) {
	b, err := m.d.AllocBF16(n)
	if err != nil {
		return b, err
	}
	m.ownedB = append(m.ownedB, b)
	return b, nil
}

// EnableBF16 switches the linear layers (not attention's scores, the norms
// or the loss) to bf16 inputs with f32 outputs and accumulation
// (mixed precision: the f32 weights stay the master copy, the bf16 shadow
// is refreshed after each update). Call it before the first Forward.
func (m *Model) EnableBF16() error {
	if m.bf16 {
		return nil
	}
	c := m.Cfg
	rows, H, F, L := m.Batch*m.Seq, c.HiddenSize, c.IntermediateSize, c.NumLayers
	var err error
	many := func(dst *[]cuda.BF16, n int) {
		*dst = make([]cuda.BF16, L)
		for i := range *dst {
			if err == nil {
				(*dst)[i], err = m.allocB(n)
			}
		}
	}
	if m.WB, err = m.allocB(m.W.N); err != nil {
		return err
	}
	many(&m.h1b, rows*H)
	many(&m.attb, rows*c.QDim())
	many(&m.h2b, rows*H)
	many(&m.ab, rows*F)
	if err == nil {
		m.hfb, err = m.allocB(rows * H)
	}
	if err == nil {
		err = m.RefreshBF16()
	}
	if err != nil {
		return err
	}
	m.bf16 = true
	return nil
}

// RefreshBF16 rounds the f32 weights into their bf16 shadow.
func (m *Model) RefreshBF16() error { return m.d.ToBF16(m.WB, m.W) }

// PB is parameter name's window of the bf16 shadow.
func (m *Model) PB(name string) cuda.BF16 {
	p := m.params[m.byName[name]]
	return m.WB.Slice(p.off, p.off+p.n)
}

// P is parameter name's window of the arena (a zero Buf when absent).
func (m *Model) P(name string) cuda.Buf {
	i, ok := m.byName[name]
	if !ok {
		return cuda.Buf{}
	}
	p := m.params[i]
	return m.W.Slice(p.off, p.off+p.n)
}

// NumParams is the number of trainable scalars.
func (m *Model) NumParams() int { return m.W.N }

func (m *Model) allocActivations() error {
	c := m.Cfg
	rows, H, F, L := m.Batch*m.Seq, c.HiddenSize, c.IntermediateSize, c.NumLayers
	W := c.QDim() + 2*c.KVDim()
	uw := F
	if c.GatedMLP() {
		uw = 2 * F
	}
	var err error
	many := func(dst *[]cuda.Buf, k, n int) {
		if err != nil {
			return
		}
		*dst = make([]cuda.Buf, k)
		for i := range *dst {
			if (*dst)[i], err = m.alloc(n); err != nil {
				return
			}
		}
	}
	one := func(dst *cuda.Buf, n int) {
		if err == nil {
			*dst, err = m.alloc(n)
		}
	}
	many(&m.xs, L+1, rows*H)
	many(&m.xmid, L, rows*H)
	many(&m.h1, L, rows*H)
	many(&m.h2, L, rows*H)
	many(&m.qkv, L, rows*W)
	many(&m.att, L, rows*c.QDim())
	many(&m.u, L, rows*uw)
	many(&m.a, L, rows*F)
	many(&m.mean1, L, rows)
	many(&m.rstd1, L, rows)
	many(&m.mean2, L, rows)
	many(&m.rstd2, L, rows)
	if m.train {
		many(&m.probs, L, m.Batch*c.NumHeads*m.Seq*m.Seq)
	} else {
		// the tensor-core path needs room for the scores; one buffer serves
		// every layer when there is no backward
		many(&m.probs, 1, m.Batch*c.NumHeads*m.Seq*m.Seq)
	}
	one(&m.hf, rows*H)
	one(&m.meanf, rows)
	one(&m.rstdf, rows)
	one(&m.logits, rows*c.VocabSize)
	one(&m.ids, rows)
	one(&m.targets, rows)
	if err != nil {
		return err
	}
	m.hostIDs, m.hostTargets = make([]int32, rows), make([]int32, rows)
	pos := make([]int, rows)
	for i := range pos {
		pos[i] = i % m.Seq
	}
	if m.pos, err = m.d.UploadInts(pos); err != nil {
		return err
	}
	m.owned = append(m.owned, m.pos)
	if rot := c.RotaryDim(); rot > 0 {
		var sc *kernels.RopeScaling
		if r := c.RopeScaling; r != nil {
			sc = &kernels.RopeScaling{Type: r.Type, Factor: r.Factor, LowFreqFactor: r.LowFreqFactor,
				HighFreqFactor: r.HighFreqFactor, OriginalMaxPositionEmbeddings: r.OriginalMaxPositionEmbeddings}
		}
		theta := c.RopeTheta
		if theta == 0 {
			theta = 10000
		}
		inv, err := kernels.RopeInvFreq(rot, theta, sc)
		if err != nil {
			return err
		}
		cos, sin := kernels.RopeTables(inv, m.Seq)
		if m.cos, err = m.d.Upload(cos); err != nil {
			return err
		}
		m.owned = append(m.owned, m.cos)
		if m.sin, err = m.d.Upload(sin); err != nil {
			return err
		}
		m.owned = append(m.owned, m.sin)
	}
	return nil
}

// SetBatch uploads a micro-batch: tokens [Batch][Seq+1], inputs the first
// Seq of each row, targets the last Seq (distill's layout).
func (m *Model) SetBatch(tokens [][]int32) error {
	if len(tokens) != m.Batch {
		return fmt.Errorf("gputrain: micro-batch has %d sequences, want %d", len(tokens), m.Batch)
	}
	V := m.Cfg.VocabSize
	for b, row := range tokens {
		if len(row) != m.Seq+1 {
			return fmt.Errorf("gputrain: sample %d has %d tokens, want seq_len+1 = %d", b, len(row), m.Seq+1)
		}
		for t := 0; t < m.Seq; t++ {
			id, tg := row[t], row[t+1]
			if id < 0 || int(id) >= V || tg < 0 || int(tg) >= V {
				return fmt.Errorf("gputrain: sample %d: token id outside the vocabulary [0,%d)", b, V)
			}
			m.hostIDs[b*m.Seq+t], m.hostTargets[b*m.Seq+t] = id, tg
		}
	}
	return firstErr(m.d.CopyFromInt32(m.ids, m.hostIDs), m.d.CopyFromInt32(m.targets, m.hostTargets))
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (m *Model) dims() kernels.AttnDims {
	c := m.Cfg
	W := c.QDim() + 2*c.KVDim()
	return kernels.AttnDims{Batch: m.Batch, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim,
		Tq: m.Seq, Tk: m.Seq, Window: c.SlidingWindow, LdQ: W, LdK: W, LdV: W, LdO: c.QDim()}
}

func (m *Model) norm(out, mean, rstd, x cuda.Buf, w, b string) error {
	c := m.Cfg
	rows := m.Batch * m.Seq
	if m.rms {
		return m.d.RMSNormStats(out, rstd, x, m.P(w), rows, c.HiddenSize, float32(c.NormEps))
	}
	var bias cuda.Buf
	if m.normBias {
		bias = m.P(b)
	}
	return m.d.LayerNorm1PStats(out, mean, rstd, x, m.P(w), bias, rows, c.HiddenSize, float32(c.NormEps))
}

// linear writes y[:, off:off+out] = x·Wᵀ into a [rows, ldy] buffer; in
// bf16 mode from xb, the bf16 copy of x (see toB).
func (m *Model) linear(y cuda.Buf, off, ldy int, x cuda.Buf, xb cuda.BF16, in int, w string, out int, accumulate bool) error {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	if m.bf16 {
		return m.d.GemmBF16(false, true, m.Batch*m.Seq, out, in, 1, xb, in, m.PB(w), in, beta, y.Off(off), ldy)
	}
	return m.d.Sgemm(false, true, m.Batch*m.Seq, out, in, 1, x, in, m.P(w), in, beta, y.Off(off), ldy)
}

// toB rounds x into its bf16 copy in bf16 mode (a no-op otherwise).
func (m *Model) toB(xb cuda.BF16, x cuda.Buf) error {
	if !m.bf16 {
		return nil
	}
	return m.d.ToBF16(xb, x)
}

// bAt is the l-th bf16 buffer, or a zero one outside bf16 mode.
func bAt(bs []cuda.BF16, l int) cuda.BF16 {
	if l < len(bs) {
		return bs[l]
	}
	return cuda.BF16{}
}

// Forward runs the model on the batch set by SetBatch and leaves the
// logits [Batch·Seq, vocab] in Logits().
func (m *Model) Forward() error {
	c := m.Cfg
	d := m.d
	rows, H, F, L := m.Batch*m.Seq, c.HiddenSize, c.IntermediateSize, c.NumLayers
	QD, KVD := c.QDim(), c.KVDim()
	W := QD + 2*KVD
	if err := d.Embedding(m.xs[0], m.P("model.embed_tokens.weight"), m.ids, rows, H); err != nil {
		return err
	}
	dims := m.dims()
	rot := c.RotaryDim()
	for l := 0; l < L; l++ {
		p := model.LayerPrefix(l)
		x := m.xs[l]
		h1b, attb, h2b, ab := bAt(m.h1b, l), bAt(m.attb, l), bAt(m.h2b, l), bAt(m.ab, l)
		err := firstErr(
			m.norm(m.h1[l], m.mean1[l], m.rstd1[l], x, p+"input_layernorm.weight", p+"input_layernorm.bias"),
			m.toB(h1b, m.h1[l]),
			m.linear(m.qkv[l], 0, W, m.h1[l], h1b, H, p+"self_attn.q_proj.weight", QD, false),
			m.linear(m.qkv[l], QD, W, m.h1[l], h1b, H, p+"self_attn.k_proj.weight", KVD, false),
			m.linear(m.qkv[l], QD+KVD, W, m.h1[l], h1b, H, p+"self_attn.v_proj.weight", KVD, false))
		if err != nil {
			return fmt.Errorf("layer %d attention input: %w", l, err)
		}
		if rot > 0 {
			if err := firstErr(
				d.ApplyRope(m.qkv[l], rows, W, c.NumHeads, c.HeadDim, rot, m.pos, m.cos, m.sin, false),
				d.ApplyRope(m.qkv[l].Off(QD), rows, W, c.NumKVHeads, c.HeadDim, rot, m.pos, m.cos, m.sin, false)); err != nil {
				return fmt.Errorf("layer %d rope: %w", l, err)
			}
		}
		probs := m.probs[0]
		if m.train {
			probs = m.probs[l]
		}
		q := m.qkv[l]
		attn := d.Attention
		if m.AttnTC {
			attn = d.AttentionTC
		}
		err = firstErr(
			attn(m.att[l], q, q.Off(QD), q.Off(QD+KVD), dims, probs),
			m.toB(attb, m.att[l]),
			d.CopyBuf(m.xmid[l], x),
			m.linear(m.xmid[l], 0, H, m.att[l], attb, QD, p+"self_attn.o_proj.weight", H, true),
			m.norm(m.h2[l], m.mean2[l], m.rstd2[l], m.xmid[l], p+"post_attention_layernorm.weight", p+"post_attention_layernorm.bias"),
			m.toB(h2b, m.h2[l]))
		if err != nil {
			return fmt.Errorf("layer %d attention: %w", l, err)
		}
		if c.GatedMLP() {
			err = firstErr(
				m.linear(m.u[l], 0, 2*F, m.h2[l], h2b, H, p+"mlp.gate_proj.weight", F, false),
				m.linear(m.u[l], F, 2*F, m.h2[l], h2b, H, p+"mlp.up_proj.weight", F, false),
				d.ApplyGated(m.act, m.a[l], m.u[l], m.u[l].Off(F), rows, F, 2*F))
		} else {
			err = firstErr(
				m.linear(m.u[l], 0, F, m.h2[l], h2b, H, p+"mlp.up_proj.weight", F, false),
				d.Activate(m.act, m.a[l], m.u[l]))
		}
		if err == nil {
			err = firstErr(
				m.toB(ab, m.a[l]),
				d.CopyBuf(m.xs[l+1], m.xmid[l]),
				m.linear(m.xs[l+1], 0, H, m.a[l], ab, F, p+"mlp.down_proj.weight", H, true))
		}
		if err != nil {
			return fmt.Errorf("layer %d mlp: %w", l, err)
		}
	}
	head := "lm_head.weight"
	if c.TieWordEmbeddings {
		head = "model.embed_tokens.weight"
	}
	return firstErr(
		m.norm(m.hf, m.meanf, m.rstdf, m.xs[L], "model.norm.weight", "model.norm.bias"),
		m.toB(m.hfb, m.hf),
		m.linear(m.logits, 0, c.VocabSize, m.hf, m.hfb, H, head, c.VocabSize, false))
}

// Logits is the buffer Forward writes [Batch·Seq, vocab] into.
func (m *Model) Logits() cuda.Buf { return m.logits }
