//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"strings"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Gradient buckets (ZeRO 2, distill.GradBuckets): instead of the whole
// gradient arena the engine holds
//
//   - big: one [V, H] buffer, the head's gradient until the backward pass
//     begins (it is complete after the chunked loss), then the
//     embedding's (the tied head's from the loss on);
//   - layer: one layer's tensors, packed in arena order, reused by each
//     layer of the backward pass;
//   - rest: the other tensors outside the layers (the final norm).
//
// Each bucket goes to the core's sink (a reduce of each part onto the
// rank owning it) as soon as the backward pass has finished it, and this
// rank's part of the reduced bucket is added to the shard's gradient sum.
type buckets struct {
	sink       func(off int, b comm.Buffer) error
	big, layer cuda.Buf
	rest       cuda.Buf
	where      []bucketAt // per parameter
	head       []run      // the untied head's
	layers     [][]run    // per layer
	tail       []run      // the embedding and the rest
	cur        int        // the layer whose gradient layer holds
	first      bool       // the step's first micro-batch: set the shard's sum
}

// bucketAt is a parameter's window: buffer (0 big, 1 layer, 2 rest) and
// offset there; layer is its layer, or -1.
type bucketAt struct {
	buf, at, layer int
}

// run is a piece of arena [off, off+n) that lies contiguously at a
// bucket buffer's offset at.
type run struct {
	buf, off, n, at int
}

// layerOf is the layer a tensor name belongs to, or -1.
func layerOf(name string, layers int) int {
	if !strings.HasPrefix(name, "model.layers.") {
		return -1
	}
	for l := range layers {
		if strings.HasPrefix(name, model.LayerPrefix(l)) {
			return l
		}
	}
	return -1
}

// SetGradSink implements distill.GradBuckets: the whole gradient arena
// is freed (if it was allocated) and the bucket buffers take its place.
func (t *Engine) SetGradSink(sink func(off int, b comm.Buffer) error) error {
	if !t.ownGrad() {
		return fmt.Errorf("gpu: gradient buckets need a ZeRO 2 shard (Shard with ownGrad)")
	}
	if t.bk != nil {
		t.bk.sink = sink
		return nil
	}
	s := t.S
	L := s.Cfg.NumLayers
	head := s.arch.HeadTensor()
	tied := head == model.EmbedTensor
	bk := &buckets{sink: sink, where: make([]bucketAt, len(s.params)), layers: make([][]run, L), cur: -1}
	bigN, restN := 0, 0
	layerN := make([]int, L)
	add := func(rs []run, buf, off, n, at int) []run {
		if k := len(rs) - 1; k >= 0 && rs[k].buf == buf && rs[k].off+rs[k].n == off && rs[k].at+rs[k].n == at {
			rs[k].n += n
			return rs
		}
		return append(rs, run{buf: buf, off: off, n: n, at: at})
	}
	for i, p := range s.params {
		l := layerOf(p.name, L)
		switch {
		case l >= 0:
			bk.where[i] = bucketAt{buf: 1, at: layerN[l], layer: l}
			bk.layers[l] = add(bk.layers[l], 1, p.aoff, p.n, layerN[l])
			layerN[l] += p.n
		case p.name == head && !tied:
			bk.where[i] = bucketAt{buf: 0, layer: -1}
			bk.head = add(bk.head, 0, p.aoff, p.n, 0)
			bigN = max(bigN, p.n)
		case p.name == model.EmbedTensor:
			bk.where[i] = bucketAt{buf: 0, layer: -1}
			bk.tail = add(bk.tail, 0, p.aoff, p.n, 0)
			bigN = max(bigN, p.n)
		default:
			bk.where[i] = bucketAt{buf: 2, at: restN, layer: -1}
			bk.tail = add(bk.tail, 2, p.aoff, p.n, restN)
			restN += p.n
		}
	}
	maxLayer := 0
	for _, n := range layerN {
		maxLayer = max(maxLayer, n)
	}
	t.release(t.grad)
	t.grad = cuda.Buf{}
	var err error
	for _, x := range []struct {
		dst *cuda.Buf
		n   int
	}{{&bk.big, bigN}, {&bk.layer, maxLayer}, {&bk.rest, restN}} {
		if x.n == 0 {
			continue
		}
		if *x.dst, err = s.d.Alloc(x.n); err != nil {
			return err
		}
		t.owned = append(t.owned, *x.dst)
	}
	t.bk = bk
	return nil
}

func (bk *buckets) buf(i int) cuda.Buf {
	switch i {
	case 0:
		return bk.big
	case 1:
		return bk.layer
	}
	return bk.rest
}

// gradParam is parameter i's gradient buffer: its window of the arena, or
// of its bucket (a layer's only while that layer's bucket is open).
func (t *Engine) gradParam(i, n int) cuda.Buf {
	p := t.S.params[i]
	if t.bk == nil {
		if gl := t.gl; gl != nil {
			if gl.bf[i] {
				panic(fmt.Sprintf("gpu: f32 gradient of %s, kept in bf16", p.name))
			}
			return t.grad.Slice(gl.at[i], gl.at[i]+n)
		}
		return t.grad.Slice(p.aoff, p.aoff+n)
	}
	w := t.bk.where[i]
	if w.layer >= 0 && w.layer != t.bk.cur {
		panic(fmt.Sprintf("gpu: gradient of %s outside its layer's bucket (layer %d open)", p.name, t.bk.cur))
	}
	return t.bk.buf(w.buf).Slice(w.at, w.at+n)
}

// openLayer makes the layer bucket hold layer l's gradient (zeroed, as
// the arena's window of a tensor no kernel writes stays zero).
func (t *Engine) openLayer(l int) error {
	if t.bk == nil {
		return nil
	}
	t.bk.cur = l
	return t.S.d.Zero(t.bk.layer)
}

// flush sends the pieces rs to the sink and adds this rank's part of the
// reduced pieces to the shard's gradient sum.
func (t *Engine) flush(rs []run) error {
	bk, sh, d := t.bk, t.shard, t.S.d
	if bk == nil {
		return nil
	}
	for _, r := range rs {
		b := t.isGrad()
		if r.buf >= 0 {
			b = bk.buf(r.buf).Slice(r.at, r.at+r.n)
		}
		if err := bk.sink(r.off, commBuf(b)); err != nil {
			return fmt.Errorf("gradient bucket [%d,%d): %w", r.off, r.off+r.n, err)
		}
		lo, hi := max(sh.lo, r.off), min(sh.hi, r.off+r.n)
		if lo >= hi {
			continue
		}
		dst, src := sh.g.Slice(lo-sh.lo, hi-sh.lo), b.Slice(lo-r.off, hi-r.off)
		if err := sumInto(d, dst, src, bk.first); err != nil {
			return err
		}
	}
	return nil
}

// flushTail flushes the embedding, the other tensors outside the layers
// and the intermediate-state projection (behind the student's arena).
func (t *Engine) flushTail() error {
	if t.bk == nil {
		return nil
	}
	rs := t.bk.tail
	if t.is != nil {
		rs = append(rs[:len(rs):len(rs)], run{buf: -1, off: t.S.arenaN, n: t.is.g.N})
	}
	return t.flush(rs)
}
