//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// The layer's extras beyond the norms and products: the projections'
// biases and qwen3's q/k norms, composed from existing kernels (add_bias,
// col_sum, the embedding lookup as a gather, rmsnorm), so the committed
// PTX serves them unchanged.

// span is the window [off, off+n) of the parameter arena (and of the
// gradient and moment arenas, which share its layout) holding the named
// tensors back to back, in that order: q|k|v biases, gate|up biases. Their
// canonical order (model.LayerTensors) puts them so; anything else is an
// error, not a silent misread.
func (m *Model) span(names ...string) (off, n int, err error) {
	for i, name := range names {
		j, ok := m.byName[name]
		if !ok {
			return 0, 0, fmt.Errorf("gpu: no tensor %q", name)
		}
		p := m.params[j]
		if p.off < 0 {
			return 0, 0, fmt.Errorf("gpu: tensor %q is not in the f32 arena", name)
		}
		if i == 0 {
			off = p.off
		} else if p.off != off+n {
			return 0, 0, fmt.Errorf("gpu: tensor %q does not follow %q in the parameter arena", name, names[i-1])
		}
		n += p.n
	}
	return off, n, nil
}

// biasSpan is the arena window of a product's biases bs (one per weight,
// side by side like the product's outputs), or n 0 when it has none. The
// biases are all present or all absent (the config's attention_bias and
// mlp_bias say so for a whole product).
func (m *Model) biasSpan(bs []string) (off, n int, err error) {
	some, all := false, true
	for _, b := range bs {
		some = some || b != ""
		all = all && b != ""
	}
	switch {
	case !some:
		return 0, 0, nil
	case !all:
		return 0, 0, fmt.Errorf("gpu: biases %q: a fused product's weights must all have one or none", bs)
	}
	return m.span(bs...)
}

// addBias adds the biases bs to y [rows, n] (n the biases' total).
func (m *Model) addBias(y cuda.Buf, bs ...string) error {
	off, n, err := m.biasSpan(bs)
	if err != nil || n == 0 {
		return err
	}
	return m.d.AddBias(y.Slice(0, m.rows()*n), m.W.Slice(off, off+n), m.rows())
}

// qkNorm is what the q/k norm's gathers need. Its scratch s holds the
// heads of the fused q|k|v rows head-major, in three segments of fixed
// offsets: every query head [Rmax·nH, hd], then every key head, then
// every value head (Rmax = Batch·Seq, so a smaller active shape uses a
// prefix of each segment and of each index list).
type qkNorm struct {
	q, k, v cuda.Buf // int32: q[r·nH+h] = r·NV+h, the fused row's head (NV = nH+2·nKV)
	inv     cuda.Buf // int32: the inverse map, fused head → scratch head
	s       cuda.Buf // [Rmax·NV, hd]
	kOff    int      // where the key segment starts (floats)
	vOff    int      // where the value segment starts
	rOff    int      // where the key heads' rstd starts in a layer's rstd buffer
	// training: each layer's pre-norm query and key heads (the segments
	// of s before the norm) and rstd [Rmax·(nH+nKV)]; in the bf16 layout
	// one shared pre and each layer's bf16 copy of it (Model.storeLayer)
	pre, rstd []cuda.Buf
	preb      []cuda.BF16
}

// allocQKNorm builds the index lists and buffers of the q/k norm.
func (m *Model) allocQKNorm() error {
	c := m.Cfg
	R, nH, nKV, hd := m.Batch*m.Seq, c.NumHeads, c.NumKVHeads, c.HeadDim
	NV := nH + 2*nKV
	q, k, v, inv := make([]int32, R*nH), make([]int32, R*nKV), make([]int32, R*nKV), make([]int32, R*NV)
	for r := 0; r < R; r++ {
		for j := 0; j < NV; j++ {
			f := int32(r*NV + j)
			switch {
			case j < nH:
				q[r*nH+j] = f
				inv[f] = int32(r*nH + j)
			case j < nH+nKV:
				k[r*nKV+j-nH] = f
				inv[f] = int32(R*nH + r*nKV + j - nH)
			default:
				v[r*nKV+j-nH-nKV] = f
				inv[f] = int32(R*(nH+nKV) + r*nKV + j - nH - nKV)
			}
		}
	}
	qk := &qkNorm{kOff: R * nH * hd, vOff: R * (nH + nKV) * hd, rOff: R * nH}
	for _, x := range []struct {
		dst  *cuda.Buf
		host []int32
	}{{&qk.q, q}, {&qk.k, k}, {&qk.v, v}, {&qk.inv, inv}} {
		b, err := m.d.UploadInt32(x.host)
		if err != nil {
			return err
		}
		m.owned = append(m.owned, b)
		*x.dst = b
	}
	var err error
	if qk.s, err = m.alloc(R * NV * hd); err != nil {
		return err
	}
	if m.train {
		qk.pre, qk.rstd = make([]cuda.Buf, m.sets()), make([]cuda.Buf, m.perLayer())
		for l := range qk.pre {
			if qk.pre[l], err = m.alloc(R * (nH + nKV) * hd); err != nil {
				return err
			}
		}
		for l := range qk.rstd {
			if qk.rstd[l], err = m.alloc(R * (nH + nKV)); err != nil {
				return err
			}
		}
	}
	m.qk = qk
	return nil
}

// gather copies heads of hd floats: out's i-th head is table's ids[i]-th,
// for n heads (the embedding lookup over a [heads, hd] view).
func (m *Model) gather(out, table, ids cuda.Buf, n int) error {
	hd := m.Cfg.HeadDim
	return m.d.Embedding(out.Slice(0, n*hd), table, ids.Slice(0, n), n, hd)
}

// qkNormForward normalises, in place, every query head of the fused rows
// qkv with weight qw and every key head with kw (RMSNorm over head_dim);
// in training layer l keeps the pre-norm heads and their rstd.
func (m *Model) qkNormForward(l int, qkv cuda.Buf, qw, kw string, keep bool) error {
	c, qk := m.Cfg, m.qk
	rows, nH, nKV, hd := m.rows(), c.NumHeads, c.NumKVHeads, c.HeadDim
	NV := nH + 2*nKV
	fused := qkv.Slice(0, rows*NV*hd)
	s, eps := qk.s, float32(c.NormEps)
	pre, rstd, rstdK := s, cuda.Buf{}, cuda.Buf{}
	if keep {
		pre, rstd = qk.pre[m.set(l)], qk.rstd[m.at(l)]
		rstdK = rstd.Off(qk.rOff)
	}
	// inferring, the norm runs in place over the scratch (rmsnorm_fwd
	// reads each element before its thread writes it)
	return firstErr(
		m.gather(pre, fused, qk.q, rows*nH),
		m.gather(pre.Off(qk.kOff), fused, qk.k, rows*nKV),
		m.gather(s.Off(qk.vOff), fused, qk.v, rows*nKV),
		m.d.RMSNormStats(s.Slice(0, rows*nH*hd), rstd, pre.Slice(0, rows*nH*hd), m.P(qw), rows*nH, hd, eps),
		m.d.RMSNormStats(s.Slice(qk.kOff, qk.kOff+rows*nKV*hd), rstdK, pre.Slice(qk.kOff, qk.kOff+rows*nKV*hd), m.P(kw), rows*nKV, hd, eps),
		m.gather(fused, s, qk.inv, rows*NV))
}

// qkNormBackward turns dqkv, the gradient with respect to the normalised
// fused rows of layer l, into the gradient with respect to the rows
// before the norm (in place; the values' part passes through) and writes
// the norm weights' gradients dqw and dkw. scratch is [Rmax·NV, hd].
func (m *Model) qkNormBackward(l int, dqkv, scratch, dqw, dkw cuda.Buf, qw, kw string) error {
	c, qk := m.Cfg, m.qk
	rows, nH, nKV, hd := m.rows(), c.NumHeads, c.NumKVHeads, c.HeadDim
	NV := nH + 2*nKV
	fused := dqkv.Slice(0, rows*NV*hd)
	dy, dx, pre, rstd := qk.s, scratch, qk.pre[m.set(l)], qk.rstd[m.at(l)]
	qn, kn := rows*nH*hd, rows*nKV*hd
	return firstErr(
		m.gather(dy, fused, qk.q, rows*nH),
		m.gather(dy.Off(qk.kOff), fused, qk.k, rows*nKV),
		m.gather(dx.Off(qk.vOff), fused, qk.v, rows*nKV),
		m.d.RMSNormBackward(dx.Slice(0, qn), dqw, dy.Slice(0, qn), pre.Slice(0, qn), m.P(qw), rstd, rows*nH, hd, false),
		m.d.RMSNormBackward(dx.Slice(qk.kOff, qk.kOff+kn), dkw, dy.Slice(qk.kOff, qk.kOff+kn), pre.Slice(qk.kOff, qk.kOff+kn),
			m.P(kw), rstd.Off(qk.rOff), rows*nKV, hd, false),
		m.gather(fused, dx, qk.inv, rows*NV))
}
