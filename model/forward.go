package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/minitron-dev/minitron/model/kernels"
)

// Output selects what Forward returns.
type Output int

const (
	// AllLogits returns logits [B·T, V] for every position.
	AllLogits Output = iota
	// LastLogits returns logits [B, V] for each sequence's last position
	// (generation).
	LastLogits
	// Hidden returns the final norm's output [B·T, H] (the head's input;
	// the post-norm hidden states used by intermediate-state distillation)
	// and skips the head.
	Hidden
)

// ForwardOptions are the optional parts of a forward pass. The zero value
// (or a nil pointer) means all logits, no hooks, no cache.
type ForwardOptions struct {
	Output Output
	// Hooks observe activations (read-only); nil fields are skipped.
	Hooks *Hooks
	// SkipLayers lists layers to drop: each passes its input through
	// unchanged (layer-drop importance). Hooks are not called for them.
	SkipLayers []int
	// Cache, when set, makes the ids continue the cached sequences: they sit
	// at positions Cache.Len…, attend to the cached keys, and their keys and
	// values are appended.
	Cache *KVCache
}

// Forward runs the decoder over a batch of equal-length token sequences
// ids[B][T] at positions 0..T−1 (or after fo.Cache) and returns what
// fo.Output selects, row-major with rows sequence-major (row b·T+t).
func (m *Model) Forward(ids [][]int, fo *ForwardOptions) ([]float32, error) {
	if fo == nil {
		fo = &ForwardOptions{}
	}
	c := m.Cfg
	B := len(ids)
	if B == 0 || len(ids[0]) == 0 {
		return nil, fmt.Errorf("forward: empty batch")
	}
	T := len(ids[0])
	flat := make([]int, 0, B*T)
	for b, s := range ids {
		if len(s) != T {
			return nil, fmt.Errorf("forward: sequence %d has %d tokens, sequence 0 has %d (sequences in a batch must have equal lengths)", b, len(s), T)
		}
		flat = append(flat, s...)
	}
	for i, id := range flat {
		if id < 0 || id >= c.VocabSize {
			return nil, fmt.Errorf("forward: token id %d (sequence %d, position %d) outside the vocabulary [0,%d)", id, i/T, i%T, c.VocabSize)
		}
	}
	start := 0
	if kc := fo.Cache; kc != nil {
		if kc.Batch != B {
			return nil, fmt.Errorf("forward: cache holds %d sequences, batch has %d", kc.Batch, B)
		}
		if kc.Len+T > kc.Cap {
			return nil, fmt.Errorf("forward: cache capacity %d exceeded (%d cached + %d new)", kc.Cap, kc.Len, T)
		}
		if len(kc.k) != c.NumLayers {
			return nil, fmt.Errorf("forward: cache was made for another model")
		}
		start = kc.Len
	}
	if err := c.CheckPositions(start, T); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	for _, l := range fo.SkipLayers {
		if l < 0 || l >= c.NumLayers {
			return nil, fmt.Errorf("forward: skip layer %d outside [0,%d)", l, c.NumLayers)
		}
	}
	if !m.resident {
		m.streamMu.Lock()
		defer m.streamMu.Unlock()
	}
	rows := B * T
	H := c.HiddenSize
	x := make([]float32, rows*H)
	if err := m.embedRows(x, flat); err != nil {
		return nil, err
	}
	pos := make([]int, rows)
	for r := range pos {
		pos[r] = start + r%T
	}
	cos, sin := m.ropeTables(start + T)
	ws := m.newWorkspace(rows)
	hk := fo.Hooks
	if hk == nil {
		hk = &Hooks{}
	}
	lp := &cpuLayers{m: m, ws: ws, B: B, T: T, start: start, pos: pos, cos: cos, sin: sin, hk: hk, kc: fo.Cache}
	for l := 0; l < c.NumLayers; l++ {
		if slices.Contains(fo.SkipLayers, l) {
			continue
		}
		var w *layerWeights
		if m.resident {
			w = m.layers[l]
		} else {
			if m.streamBuf == nil {
				m.streamBuf = m.newLayerBuf()
			}
			w = m.streamBuf
			if err := m.readLayer(l, w); err != nil {
				return nil, err
			}
			m.prefetchLayer(l + 1)
		}
		lp.w = w
		if _, err := Layer(m.arch, Backend[[]float32](lp), l, x); err != nil {
			return nil, err
		}
	}
	if fo.Cache != nil {
		fo.Cache.Len += T
	}

	// final norm (into ws.h) and head
	normW, normB := m.normW, m.normB
	if !m.resident {
		var err error
		if normW, err = m.readTensor("model.norm.weight"); err != nil {
			return nil, err
		}
		if m.normBias {
			if normB, err = m.readTensor("model.norm.bias"); err != nil {
				return nil, err
			}
		}
	}
	hrows := x
	nrows := rows
	if fo.Output == LastLogits {
		// only the last position of each sequence goes through the head
		hrows = make([]float32, B*H)
		for b := 0; b < B; b++ {
			copy(hrows[b*H:(b+1)*H], x[(b*T+T-1)*H:(b*T+T)*H])
		}
		nrows = B
	}
	h := ws.h[:nrows*H]
	m.norm(h, hrows, normW, normB, nrows)
	if hk.FinalNorm != nil && fo.Output != LastLogits {
		hk.FinalNorm(c.NumLayers, B, T, h)
	}
	if fo.Output == Hidden {
		return slices.Clone(h), nil
	}
	logits := make([]float32, nrows*c.VocabSize)
	if err := m.applyHead(logits, h, nrows); err != nil {
		return nil, err
	}
	return logits, nil
}

// workspace holds one forward pass's activation buffers.
type workspace struct {
	h, qkv, att, up, gate []float32
}

func (m *Model) newWorkspace(rows int) *workspace {
	c := m.Cfg
	ws := &workspace{
		h:   make([]float32, rows*c.HiddenSize),
		qkv: make([]float32, rows*(c.QDim()+2*c.KVDim())),
		att: make([]float32, rows*c.QDim()),
		up:  make([]float32, rows*c.IntermediateSize),
	}
	if c.GatedMLP() {
		ws.gate = make([]float32, rows*c.IntermediateSize)
	}
	return ws
}

func (m *Model) norm(out, x, w, b []float32, rows int) {
	if m.arch.RMSNorm {
		kernels.RMSNorm(out, x, w, rows, m.Cfg.HiddenSize, float32(m.Cfg.NormEps))
	} else {
		kernels.LayerNorm1P(out, x, w, b, rows, m.Cfg.HiddenSize, float32(m.Cfg.NormEps))
	}
}

// cpuLayers runs decoder layers (Layer) on the CPU as a Backend over the
// residual stream x [B·T, H], updated in place, and one workspace: each
// step calls the kernels with the layer's weights w and the hooks. Embed,
// the final norm and the head are Forward's own (its output modes and
// streaming weights).
type cpuLayers struct {
	m           *Model
	w           *layerWeights
	ws          *workspace
	B, T, start int
	pos         []int
	cos, sin    []float32
	hk          *Hooks
	kc          *KVCache
	fused       bool // the activation ran in the MLP input product's epilogue
}

func (p *cpuLayers) rows() int { return p.B * p.T }

func (p *cpuLayers) Embed() ([]float32, error) { return nil, fmt.Errorf("forward: Embed is Forward's") }

func (p *cpuLayers) Logits([]float32, string) ([]float32, error) {
	return nil, fmt.Errorf("forward: Logits is Forward's")
}

func (p *cpuLayers) Norm(l int, st Step, x []float32, _, _ string) ([]float32, error) {
	w, ws, hk := p.w, p.ws, p.hk
	switch st {
	case StepAttnNorm:
		if hk.LayerInput != nil {
			hk.LayerInput(l, p.B, p.T, x)
		}
		p.m.norm(ws.h, x, w.attnNormW, w.attnNormB, p.rows())
		if hk.AttnNorm != nil {
			hk.AttnNorm(l, p.B, p.T, ws.h)
		}
	case StepMLPNorm:
		p.m.norm(ws.h, x, w.mlpNormW, w.mlpNormB, p.rows())
		if hk.MLPNorm != nil {
			hk.MLPNorm(l, p.B, p.T, ws.h)
		}
	default:
		return nil, fmt.Errorf("forward: the final norm is Forward's")
	}
	return ws.h, nil
}

// Linear runs the fused q|k|v product, or the MLP's input products: with
// no MLPPre hook, the activation runs in the up product's epilogue on each
// block while it is still in cache.
func (p *cpuLayers) Linear(l int, st Step, h []float32, _, _ []string) ([]float32, error) {
	c, w, ws, hk := p.m.Cfg, p.w, p.ws, p.hk
	rows, H, F := p.rows(), c.HiddenSize, c.IntermediateSize
	if st == StepQKV {
		kernels.ParMatMulT(ws.qkv, h, w.qkv, rows, c.QDim()+2*c.KVDim(), H, false)
		if w.qkvBias != nil {
			kernels.AddBias(ws.qkv, w.qkvBias, rows)
		}
		return ws.qkv, nil
	}
	gated := c.GatedMLP()
	if gated {
		kernels.ParMatMulT(ws.gate, h, w.gate, rows, F, H, false)
		if w.gateBias != nil {
			kernels.AddBias(ws.gate, w.gateBias, rows)
		}
	}
	p.fused = hk.MLPPre == nil
	if p.fused {
		kernels.ParMatMulTEpi(ws.up, h, w.up, rows, F, H, false, func(r0, r1, c0, c1 int) {
			addBiasBlock(ws.up, w.upBias, F, r0, r1, c0, c1)
			if gated {
				p.m.act.GatedBlock(ws.gate, ws.up, F, r0, r1, c0, c1)
			} else {
				p.m.act.ApplyBlock(ws.up, F, r0, r1, c0, c1)
			}
		})
	} else {
		kernels.ParMatMulT(ws.up, h, w.up, rows, F, H, false)
		if w.upBias != nil {
			kernels.AddBias(ws.up, w.upBias, rows)
		}
	}
	if gated {
		return ws.gate, nil
	}
	return ws.up, nil
}

// QKNorm normalises the query and key heads of qkv in place.
func (p *cpuLayers) QKNorm(l int, qkv []float32, _, _ string) ([]float32, error) {
	c, w := p.m.Cfg, p.w
	ld, eps := c.QDim()+2*c.KVDim(), float32(c.NormEps)
	kernels.HeadRMSNorm(qkv, nil, w.qNorm, p.rows(), ld, 0, c.NumHeads, c.HeadDim, eps)
	kernels.HeadRMSNorm(qkv, nil, w.kNorm, p.rows(), ld, c.QDim(), c.NumKVHeads, c.HeadDim, eps)
	return qkv, nil
}

func (p *cpuLayers) Attention(l int, qkv []float32) ([]float32, error) {
	c, ws := p.m.Cfg, p.ws
	rows, qd, kvd, hd := p.rows(), c.QDim(), c.KVDim(), c.HeadDim
	qkvW := qd + 2*kvd
	rot := c.RotaryDim()
	kernels.ApplyRope(qkv, rows, qkvW, c.NumHeads, hd, rot, p.pos, p.cos, p.sin)
	kernels.ApplyRope(qkv[qd:], rows, qkvW, c.NumKVHeads, hd, rot, p.pos, p.cos, p.sin)
	d := p.m.arch.AttnDims(p.B, p.T)
	kbuf, vbuf := qkv[qd:], qkv[qd+kvd:]
	if kc := p.kc; kc != nil {
		kc.store(l, qkv, qd, qkvW, p.B, p.T, p.start)
		kbuf, vbuf = kc.k[l], kc.v[l]
		d.Tk = p.start + p.T
		d.KSeqRows = kc.Cap
		d.LdK, d.LdV = kvd, kvd
	}
	kernels.Attention(ws.att, qkv, kbuf, vbuf, d, nil)
	if p.hk.AttnHeads != nil {
		p.hk.AttnHeads(l, p.B, p.T, ws.att)
	}
	return ws.att, nil
}

func (p *cpuLayers) Activation(l int, u []float32) ([]float32, error) {
	c, ws := p.m.Cfg, p.ws
	if !p.fused {
		if c.GatedMLP() {
			p.hk.MLPPre(l, p.B, p.T, ws.gate)
			p.m.act.ApplyGated(ws.gate, ws.gate, ws.up, p.rows(), c.IntermediateSize, c.IntermediateSize)
		} else {
			p.hk.MLPPre(l, p.B, p.T, ws.up)
			p.m.act.Apply(ws.up, ws.up)
		}
	}
	if p.hk.MLPPost != nil {
		p.hk.MLPPost(l, p.B, p.T, u)
	}
	return u, nil
}

// AddLinear adds y·Wᵀ (and the bias) to the stream x in place.
func (p *cpuLayers) AddLinear(l int, st Step, x, y []float32, _, _ string) ([]float32, error) {
	c, w := p.m.Cfg, p.w
	rows, H := p.rows(), c.HiddenSize
	if st == StepAttnOut {
		kernels.ParMatMulT(x, y, w.o, rows, H, c.QDim(), true)
		if w.oBias != nil {
			kernels.AddBias(x, w.oBias, rows)
		}
		return x, nil
	}
	kernels.ParMatMulT(x, y, w.down, rows, H, c.IntermediateSize, true)
	if w.downBias != nil {
		kernels.AddBias(x, w.downBias, rows)
	}
	if p.hk.LayerOutput != nil {
		p.hk.LayerOutput(l, p.B, p.T, x)
	}
	return x, nil
}

// addBiasBlock adds bias[c0:c1] to rows [r0,r1) of x [rows, ld] (no-op for
// a nil bias).
func addBiasBlock(x, bias []float32, ld, r0, r1, c0, c1 int) {
	if bias == nil {
		return
	}
	for r := r0; r < r1; r++ {
		seg := x[r*ld+c0 : r*ld+c1]
		for i, b := range bias[c0:c1] {
			seg[i] += b
		}
	}
}

// embedRows gathers the embeddings of ids into x [len(ids), H]. A streaming
// model reads only the needed rows from the source.
func (m *Model) embedRows(x []float32, ids []int) error {
	H := m.Cfg.HiddenSize
	if m.embed != nil {
		return kernels.Embedding(x, m.embed, ids, H)
	}
	const name = "model.embed_tokens.weight"
	if rr, ok := m.src.(RangeReader); ok {
		for i, id := range ids {
			if err := rr.ReadF32Range(name, id*H, x[i*H:(i+1)*H]); err != nil {
				return err
			}
		}
		releaseMapped(m.src, name)
		return nil
	}
	table, err := m.readTensor(name)
	if err != nil {
		return err
	}
	return kernels.Embedding(x, table, ids, H)
}

// headChunkBytes bounds the f32 slice of the head a streaming model converts
// at once (16384 vocabulary rows at H=1024).
const headChunkBytes = 64 << 20

// applyHead writes logits [rows, V] = h·headᵀ.
func (m *Model) applyHead(logits, h []float32, rows int) error {
	c := m.Cfg
	H, V := c.HiddenSize, c.VocabSize
	if m.head != nil {
		kernels.ParMatMulT(logits, h, m.head, rows, V, H, false)
		return nil
	}
	name := "lm_head.weight"
	if c.TieWordEmbeddings {
		name = "model.embed_tokens.weight"
	}
	chunk := max(16, headChunkBytes/(4*H))
	rr, ranged := m.src.(RangeReader)
	if !ranged {
		chunk = V
	}
	// a streaming model keeps one head buffer (Forward holds streamMu), so
	// repeated passes do not leave 64 MiB of garbage each
	if n := min(chunk, V) * H; len(m.headBuf) < n {
		m.headBuf = make([]float32, n)
	}
	buf := m.headBuf
	for v0 := 0; v0 < V; v0 += chunk {
		v1 := min(V, v0+chunk)
		wc := buf[:(v1-v0)*H]
		var err error
		if ranged {
			err = rr.ReadF32Range(name, v0*H, wc)
		} else {
			err = m.src.ReadF32(name, wc)
		}
		if err != nil {
			return err
		}
		kernels.ParSgemm(false, true, rows, v1-v0, H, 1, h, H, wc, H, 0, logits[v0:], V)
	}
	releaseMapped(m.src, name)
	return nil
}

// SequenceNLL returns the per-position negative log-likelihood of ids[t+1]
// given ids[..t] from one sequence's logits [T, V] (T = len(ids)), and their
// mean; T−1 values. Log-softmax is computed in float64.
func SequenceNLL(logits []float32, ids []int) (nll []float64, mean float64, err error) {
	T := len(ids)
	if T < 2 {
		return nil, 0, fmt.Errorf("nll: need at least 2 tokens, got %d", T)
	}
	if len(logits)%T != 0 {
		return nil, 0, fmt.Errorf("nll: %d logits do not split into %d rows", len(logits), T)
	}
	V := len(logits) / T
	nll = make([]float64, T-1)
	for t := 0; t+1 < T; t++ {
		row := logits[t*V : (t+1)*V]
		next := ids[t+1]
		if next < 0 || next >= V {
			return nil, 0, fmt.Errorf("nll: token id %d at position %d outside the vocabulary [0,%d)", next, t+1, V)
		}
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v) - mx)
		}
		nll[t] = mx + math.Log(s) - float64(row[next])
		mean += nll[t]
	}
	return nll, mean / float64(T-1), nil
}

// HeadRows writes the logits [rows, V] = h·headᵀ of rows final-norm
// outputs h [rows, H] (the Hidden output of Forward): the head of a
// forward pass applied a chunk of rows at a time, so that the logits of a
// long batch need never exist whole.
func (m *Model) HeadRows(logits, h []float32, rows int) error {
	H, V := m.Cfg.HiddenSize, m.Cfg.VocabSize
	if rows <= 0 || len(h) != rows*H || len(logits) != rows*V {
		return fmt.Errorf("head: %d rows need h of %d and logits of %d values, got %d and %d", rows, rows*H, rows*V, len(h), len(logits))
	}
	if !m.resident {
		m.streamMu.Lock()
		defer m.streamMu.Unlock()
	}
	return m.applyHead(logits, h, rows)
}
