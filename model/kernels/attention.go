package kernels

import (
	"fmt"
	"math"
)

// AttnDims describes one causal attention call over a batch of sequences.
//
// Layout: q and out hold Batch·Tq rows (sequence b's queries are rows
// b·Tq … b·Tq+Tq−1), k and v hold sequence b's keys at rows
// b·KSeqRows … b·KSeqRows+Tk−1. Head h occupies columns h·HeadDim …
// (h+1)·HeadDim−1 of its row. Query i of a sequence sits at position
// Tk−Tq+i and sees key j iff j ≤ pos and (Window == 0 or pos−Window < j).
// Query head h reads KV head h/(Heads/KVHeads) (GQA).
type AttnDims struct {
	Batch, Heads, KVHeads, HeadDim int
	Tq, Tk                         int
	Window                         int // sliding window; 0 = plain causal
	// Row strides in floats; 0 means packed (Heads·HeadDim for q/out,
	// KVHeads·HeadDim for k/v). A fused QKV buffer passes its full width.
	LdQ, LdK, LdV, LdO int
	// KSeqRows is the row distance between sequences in k and v (a KV
	// cache's capacity); 0 means Tk.
	KSeqRows int
}

func (d *AttnDims) fill() error {
	if d.Batch <= 0 || d.Heads <= 0 || d.KVHeads <= 0 || d.HeadDim <= 0 || d.Tq <= 0 || d.Tk < d.Tq {
		return fmt.Errorf("attention: bad dims %+v", *d)
	}
	if d.Heads%d.KVHeads != 0 {
		return fmt.Errorf("attention: %d heads not a multiple of %d KV heads", d.Heads, d.KVHeads)
	}
	if d.LdQ == 0 {
		d.LdQ = d.Heads * d.HeadDim
	}
	if d.LdO == 0 {
		d.LdO = d.Heads * d.HeadDim
	}
	if d.LdK == 0 {
		d.LdK = d.KVHeads * d.HeadDim
	}
	if d.LdV == 0 {
		d.LdV = d.KVHeads * d.HeadDim
	}
	if d.KSeqRows == 0 {
		d.KSeqRows = d.Tk
	}
	return nil
}

// attnChunk is how many query rows share one score block: small enough that
// causal blocks skip most of the masked upper triangle, large enough for the
// BLAS calls to be efficient.
const attnChunk = 32

// Attention computes out = softmax(q·kᵀ/√HeadDim + causal mask)·v per
// (sequence, head), scores and softmax in float32. Work is split over
// goroutines by (sequence, head, block of 32 query rows); each block's
// products go to (single-threaded) BLAS and skip fully masked keys. If probs
// is non-nil it receives the attention weights [Batch, Heads, Tq, Tk] (zero
// where masked), which the backward pass reuses.
func Attention(out, q, k, v []float32, d AttnDims, probs []float32) {
	if err := d.fill(); err != nil {
		panic(err)
	}
	hd := d.HeadDim
	group := d.Heads / d.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	off := d.Tk - d.Tq
	chunks := (d.Tq + attnChunk - 1) / attnChunk
	scratch := make([][]float32, Workers())
	parallelTasks(d.Batch*d.Heads*chunks, func(w, t int) {
		c := t % chunks
		h := (t / chunks) % d.Heads
		b := t / (chunks * d.Heads)
		g := h / group
		i0, i1 := c*attnChunk, min(d.Tq, (c+1)*attnChunk)
		rows := i1 - i0
		khi := off + i1 // keys [klo, khi) cover every visible key of the block
		klo := 0
		if d.Window > 0 {
			klo = max(0, off+i0-d.Window+1)
		}
		n := khi - klo
		if scratch[w] == nil {
			scratch[w] = make([]float32, attnChunk*d.Tk)
		}
		s := scratch[w][:rows*n]
		qo := (b*d.Tq+i0)*d.LdQ + h*hd
		ko := (b*d.KSeqRows+klo)*d.LdK + g*hd
		vo := (b*d.KSeqRows+klo)*d.LdV + g*hd
		Sgemm(false, true, rows, n, hd, scale, q[qo:], d.LdQ, k[ko:], d.LdK, 0, s, n)
		for r := 0; r < rows; r++ {
			pos := off + i0 + r
			lo := 0
			if d.Window > 0 {
				lo = max(0, pos-d.Window+1)
			}
			row := s[r*n : (r+1)*n]
			// visible keys are [lo, pos]; columns are offset by klo
			clear(row[:lo-klo])
			clear(row[pos+1-klo:])
			softmaxInPlace(row[lo-klo : pos+1-klo])
			if probs != nil {
				pr := probs[((b*d.Heads+h)*d.Tq+i0+r)*d.Tk:][:d.Tk]
				clear(pr[:klo])
				copy(pr[klo:khi], row)
				clear(pr[khi:])
			}
		}
		Sgemm(false, false, rows, hd, n, 1, s, n, v[vo:], d.LdV, 0, out[(b*d.Tq+i0)*d.LdO+h*hd:], d.LdO)
	})
}
