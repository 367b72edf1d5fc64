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
		m.layer(l, w, x, ws, B, T, start, pos, cos, sin, hk, fo.Cache)
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

// layer applies decoder layer l to the residual stream x [B·T, H] in place.
func (m *Model) layer(l int, w *layerWeights, x []float32, ws *workspace, B, T, start int, pos []int, cos, sin []float32, hk *Hooks, kc *KVCache) {
	c := m.Cfg
	rows := B * T
	H, F, qd, kvd, hd := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim(), c.HeadDim
	qkvW := qd + 2*kvd
	if hk.LayerInput != nil {
		hk.LayerInput(l, B, T, x)
	}
	// attention block
	m.norm(ws.h, x, w.attnNormW, w.attnNormB, rows)
	if hk.AttnNorm != nil {
		hk.AttnNorm(l, B, T, ws.h)
	}
	kernels.ParMatMulT(ws.qkv, ws.h, w.qkv, rows, qkvW, H, false)
	if w.qkvBias != nil {
		kernels.AddBias(ws.qkv, w.qkvBias, rows)
	}
	rot := c.RotaryDim()
	kernels.ApplyRope(ws.qkv, rows, qkvW, c.NumHeads, hd, rot, pos, cos, sin)
	kernels.ApplyRope(ws.qkv[qd:], rows, qkvW, c.NumKVHeads, hd, rot, pos, cos, sin)
	d := kernels.AttnDims{Batch: B, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: hd,
		Tq: T, Tk: T, Window: c.SlidingWindow, LdQ: qkvW, LdO: qd}
	kbuf, vbuf := ws.qkv[qd:], ws.qkv[qd+kvd:]
	if kc != nil {
		kc.store(l, ws.qkv, qd, qkvW, B, T, start)
		kbuf, vbuf = kc.k[l], kc.v[l]
		d.Tk = start + T
		d.KSeqRows = kc.Cap
		d.LdK, d.LdV = kvd, kvd
	} else {
		d.LdK, d.LdV = qkvW, qkvW
	}
	kernels.Attention(ws.att, ws.qkv, kbuf, vbuf, d, nil)
	if hk.AttnHeads != nil {
		hk.AttnHeads(l, B, T, ws.att)
	}
	kernels.ParMatMulT(x, ws.att, w.o, rows, H, qd, true) // x += att·Woᵀ
	if w.oBias != nil {
		kernels.AddBias(x, w.oBias, rows)
	}
	// MLP block
	m.norm(ws.h, x, w.mlpNormW, w.mlpNormB, rows)
	if hk.MLPNorm != nil {
		hk.MLPNorm(l, B, T, ws.h)
	}
	inter := ws.up
	if hk.MLPPre == nil {
		// fused: the activation runs on each block of the up product while
		// it is still in cache
		if c.GatedMLP() {
			kernels.ParMatMulT(ws.gate, ws.h, w.gate, rows, F, H, false)
			if w.gateBias != nil {
				kernels.AddBias(ws.gate, w.gateBias, rows)
			}
			kernels.ParMatMulTEpi(ws.up, ws.h, w.up, rows, F, H, false, func(r0, r1, c0, c1 int) {
				addBiasBlock(ws.up, w.upBias, F, r0, r1, c0, c1)
				m.act.GatedBlock(ws.gate, ws.up, F, r0, r1, c0, c1)
			})
			inter = ws.gate
		} else {
			kernels.ParMatMulTEpi(ws.up, ws.h, w.up, rows, F, H, false, func(r0, r1, c0, c1 int) {
				addBiasBlock(ws.up, w.upBias, F, r0, r1, c0, c1)
				m.act.ApplyBlock(ws.up, F, r0, r1, c0, c1)
			})
		}
	} else {
		kernels.ParMatMulT(ws.up, ws.h, w.up, rows, F, H, false)
		if w.upBias != nil {
			kernels.AddBias(ws.up, w.upBias, rows)
		}
		if c.GatedMLP() {
			kernels.ParMatMulT(ws.gate, ws.h, w.gate, rows, F, H, false)
			if w.gateBias != nil {
				kernels.AddBias(ws.gate, w.gateBias, rows)
			}
			hk.MLPPre(l, B, T, ws.gate)
			m.act.ApplyGated(ws.gate, ws.gate, ws.up, rows, F, F)
			inter = ws.gate
		} else {
			hk.MLPPre(l, B, T, ws.up)
			m.act.Apply(ws.up, ws.up)
		}
	}
	if hk.MLPPost != nil {
		hk.MLPPost(l, B, T, inter)
	}
	kernels.ParMatMulT(x, inter, w.down, rows, H, F, true) // x += act·Wdownᵀ
	if w.downBias != nil {
		kernels.AddBias(x, w.downBias, rows)
	}
	if hk.LayerOutput != nil {
		hk.LayerOutput(l, B, T, x)
	}
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
