package model

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model/kernels"
)

// nllChunkBytes bounds the logits block TokenNLL materialises at once.
var nllChunkBytes = 64 << 20

// TokenNLL runs the forward pass and returns, per sequence, the negative
// log-likelihood of ids[b][t+1] given ids[b][..t] (T−1 values each), without
// ever holding the full [B·T, V] logits: the head runs over blocks of the
// vocabulary with an online log-sum-exp, so long sequences with a large
// vocabulary (256k for Nemotron) fit in memory. fo's Hooks, SkipLayers and
// Cache apply; fo.Output is ignored. This is the loss that perplexity and
// layer-drop importance need.
func (m *Model) TokenNLL(ids [][]int, fo *ForwardOptions) ([][]float64, error) {
	var o ForwardOptions
	if fo != nil {
		o = *fo
	}
	o.Output = Hidden
	if len(ids) == 0 || len(ids[0]) < 2 {
		return nil, fmt.Errorf("nll: need sequences of at least 2 tokens")
	}
	h, err := m.Forward(ids, &o)
	if err != nil {
		return nil, err
	}
	c := m.Cfg
	B, T, H, V := len(ids), len(ids[0]), c.HiddenSize, c.VocabSize
	rows := B * T
	// running max, sum of exp and the target's logit per row
	mx := make([]float64, rows)
	sum := make([]float64, rows)
	tgt := make([]float64, rows)
	for r := range mx {
		mx[r] = math.Inf(-1)
	}
	vc := max(16, nllChunkBytes/(4*max(rows, H)))
	vc = min(vc, V)
	logits := make([]float32, rows*vc)
	var wbuf []float32
	name := "lm_head.weight"
	if c.TieWordEmbeddings {
		name = "model.embed_tokens.weight"
	}
	if !m.resident {
		m.streamMu.Lock()
		defer m.streamMu.Unlock()
		wbuf = make([]float32, vc*H)
	}
	for v0 := 0; v0 < V; v0 += vc {
		v1 := min(V, v0+vc)
		n := v1 - v0
		var w []float32
		if m.resident {
			w = m.head[v0*H : v1*H]
		} else {
			w = wbuf[:n*H]
			if err := readRows(m.src, name, v0*H, w); err != nil {
				return nil, err
			}
		}
		kernels.ParMatMulT(logits[:rows*n], h, w, rows, n, H, false)
		kernels.ParallelFor(rows, 8, func(lo, hi int) {
			for r := lo; r < hi; r++ {
				row := logits[r*n : (r+1)*n]
				cm := math.Inf(-1)
				for _, v := range row {
					cm = math.Max(cm, float64(v))
				}
				nm := math.Max(mx[r], cm)
				s := sum[r] * math.Exp(mx[r]-nm)
				for _, v := range row {
					s += math.Exp(float64(v) - nm)
				}
				mx[r], sum[r] = nm, s
				if t := r % T; t+1 < T {
					if id := ids[r/T][t+1]; id >= v0 && id < v1 {
						tgt[r] = float64(row[id-v0])
					}
				}
			}
		})
	}
	if !m.resident {
		releaseMapped(m.src, name)
	}
	out := make([][]float64, B)
	for b := range out {
		out[b] = make([]float64, T-1)
		for t := 0; t+1 < T; t++ {
			r := b*T + t
			out[b][t] = mx[r] + math.Log(sum[r]) - tgt[r]
			if math.IsNaN(out[b][t]) || math.IsInf(out[b][t], 0) {
				return nil, m.ExplainNonFinite("nll")
			}
		}
	}
	return out, nil
}

// readRows converts elements [off, off+len(dst)) of a tensor, through
// RangeReader when the source has it.
func readRows(src TensorSource, name string, off int, dst []float32) error {
	if rr, ok := src.(RangeReader); ok {
		return rr.ReadF32Range(name, off, dst)
	}
	info, ok := src.Info(name)
	if !ok {
		return fmt.Errorf("missing tensor %q", name)
	}
	all := make([]float32, info.NumElements())
	if err := src.ReadF32(name, all); err != nil {
		return err
	}
	copy(dst, all[off:])
	return nil
}
