//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"slices"
	"strings"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Gradient buckets (distill.GradBuckets): under ZeRO 2, instead of the
// whole gradient arena the engine holds
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
//
// With bf16 gradients (a bf16 engine, EngineConfig.BF16) the matrices'
// buckets are bf16 and are reduced as bf16: the layer bucket's matrices
// (written by GemmBF16Out, each at a 128-value boundary) beside a small
// f32 part for its norms and biases, and big, which the bf16 head
// products write chunk by chunk and the embedding's lookup adds to
// through a compact f32 [distinct tokens, H] scratch (AddRowsBF16), so
// that no f32 [V, H] buffer exists. Under ZeRO 1 a bf16 engine keeps the
// whole arena of bf16 gradients (gradLayout, as without ZeRO) and sends
// it to the sink after each backward pass, one piece per run of tensors:
// the same reduction, without buckets.
//
// The shard's gradient sum is f32 when a rank's step accumulates
// micro-batches (as Megatron and DeepSpeed accumulate) and for f32
// gradients; with bf16 gradients and one micro-batch per rank it is a
// copy of the bf16 reduction: bf16 for the matrices' elements, f32 for the
// others (shard.segs).
type buckets struct {
	sink  func(off int, b comm.Buffer) error
	ranks int  // the world: a rank's micro-batches per step are the step's / ranks
	whole bool // ZeRO 1 with bf16 gradients: the arena is the one bucket
	big   gbuf // [V, H]: f32, or bf16 with bf16 gradients
	layer cuda.Buf
	layB  cuda.BF16 // the layer's bf16 matrices (bf16 gradients)
	rest  cuda.Buf
	// the embedding's bf16 gradient: the micro-batch's distinct token ids
	// and each row's index among them
	uniq, rowMap cuda.Buf
	hostU, hostM []int32
	where        []bucketAt // per parameter
	head         []run      // the untied head's
	layers       [][]run    // per layer
	tail         []run      // the embedding and the rest (whole: the arena)
	cur          int        // the layer whose gradient layer holds
	first        bool       // the step's first micro-batch: set the shard's sum
}

// bucket buffers a run lies in
const (
	bufIS     = -1 // the intermediate-state projection's gradient
	bufBig    = 0
	bufLayer  = 1
	bufRest   = 2
	bufLayerB = 3
	bufArena  = 4 // the whole arena's f32 part (whole)
	bufArenaB = 5 // and its bf16 part
)

// bucketAt is a parameter's window: buffer and offset there; layer is
// its layer, or -1.
type bucketAt struct {
	buf, at, layer int
}

// run is a piece of arena [off, off+n) that lies contiguously at a
// bucket buffer's offset at.
type run struct {
	buf, off, n, at int
}

// gbuf is a gradient buffer of either precision.
type gbuf struct {
	f  cuda.Buf
	b  cuda.BF16
	bf bool
}

func (g gbuf) len() int {
	if g.bf {
		return g.b.N
	}
	return g.f.N
}

func (g gbuf) slice(lo, hi int) gbuf {
	if g.bf {
		return gbuf{b: g.b.Slice(lo, hi), bf: true}
	}
	return gbuf{f: g.f.Slice(lo, hi)}
}

// comm is g as a communicator buffer (bf16 reduced as bf16).
func (g gbuf) comm() comm.Buffer {
	if g.bf {
		return commBufB(g.b)
	}
	return commBuf(g.f)
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

// gradBF reports a parameter whose gradient is bf16: the gradient
// arena's layout says (gradLayout: without ZeRO, and ZeRO 1); else, with
// bf16 products, ZeRO 2's buckets hold every matrix of the layers, the
// head and the embedding in bf16.
func (t *Engine) gradBF(i int) bool {
	if t.gl != nil {
		return t.gl.bf[i]
	}
	s := t.S
	p := s.params[i]
	if !s.bf16 || len(p.shape) != 2 {
		return false
	}
	return layerOf(p.name, s.Cfg.NumLayers) >= 0 || p.name == s.arch.HeadTensor() || p.name == model.EmbedTensor
}

// SetGradSink implements distill.GradBuckets: under ZeRO 2 the whole
// gradient arena is freed (if it was allocated) and the bucket buffers
// take its place; under ZeRO 1 a bf16 engine sends its arena of bf16
// gradients to the sink after each backward pass (an f32 one reports
// false: the core reduces its arena once a step). ranks is the world.
func (t *Engine) SetGradSink(sink func(off int, b comm.Buffer) error, ranks int) (bool, error) {
	if t.shard == nil {
		return false, fmt.Errorf("gpu: gradient buckets need a shard (Shard first)")
	}
	if !t.ownGrad() {
		return false, nil
	}
	if ranks < 1 {
		return false, fmt.Errorf("gpu: gradient sink for %d ranks", ranks)
	}
	if t.bk != nil {
		t.bk.sink, t.bk.ranks = sink, ranks
		return true, nil
	}
	s := t.S
	bk := &buckets{sink: sink, ranks: ranks, where: make([]bucketAt, len(s.params)), cur: -1}
	add := func(rs []run, buf, off, n, at int) []run {
		if k := len(rs) - 1; k >= 0 && rs[k].buf == buf && rs[k].off+rs[k].n == off && rs[k].at+rs[k].n == at {
			rs[k].n += n
			return rs
		}
		return append(rs, run{buf: buf, off: off, n: n, at: at})
	}
	if gl := t.gl; gl != nil {
		// ZeRO 1: the arena's tensors, as they lie in its two parts
		bk.whole = true
		for i, p := range s.params {
			buf := bufArena
			if gl.bf[i] {
				buf = bufArenaB
			}
			bk.tail = add(bk.tail, buf, p.aoff, p.n, gl.at[i])
		}
		t.bk = bk
		return true, nil
	}
	L := s.Cfg.NumLayers
	head := s.arch.HeadTensor()
	tied := head == model.EmbedTensor
	bk.layers = make([][]run, L)
	bigN, restN := 0, 0
	layerN, layerNB := make([]int, L), make([]int, L)
	for i, p := range s.params {
		l := layerOf(p.name, L)
		switch {
		case l >= 0 && t.gradBF(i):
			bk.where[i] = bucketAt{buf: bufLayerB, at: layerNB[l], layer: l}
			bk.layers[l] = add(bk.layers[l], bufLayerB, p.aoff, p.n, layerNB[l])
			layerNB[l] += alignBF16(p.n)
		case l >= 0:
			bk.where[i] = bucketAt{buf: bufLayer, at: layerN[l], layer: l}
			bk.layers[l] = add(bk.layers[l], bufLayer, p.aoff, p.n, layerN[l])
			layerN[l] += p.n
		case p.name == head && !tied:
			bk.where[i] = bucketAt{buf: bufBig, layer: -1}
			bk.head = add(bk.head, bufBig, p.aoff, p.n, 0)
			bigN = max(bigN, p.n)
		case p.name == model.EmbedTensor:
			bk.where[i] = bucketAt{buf: bufBig, layer: -1}
			bk.tail = add(bk.tail, bufBig, p.aoff, p.n, 0)
			bigN = max(bigN, p.n)
		default:
			bk.where[i] = bucketAt{buf: bufRest, at: restN, layer: -1}
			bk.tail = add(bk.tail, bufRest, p.aoff, p.n, restN)
			restN += p.n
		}
	}
	t.release(t.grad)
	t.grad = cuda.Buf{}
	bigBF := t.gradBF(s.byName[model.EmbedTensor])
	var err error
	alloc := func(dst *cuda.Buf, n int) {
		if err != nil || n == 0 {
			return
		}
		*dst, err = t.alloc(n)
	}
	allocB := func(dst *cuda.BF16, n int) {
		if err != nil || n == 0 {
			return
		}
		*dst, err = t.allocB(n)
	}
	if bigBF {
		bk.big.bf = true
		allocB(&bk.big.b, bigN)
		rows := s.Batch * s.Seq
		alloc(&bk.uniq, rows)
		alloc(&bk.rowMap, rows)
		bk.hostU, bk.hostM = make([]int32, 0, rows), make([]int32, rows)
	} else {
		alloc(&bk.big.f, bigN)
	}
	alloc(&bk.layer, slices.Max(layerN))
	allocB(&bk.layB, slices.Max(layerNB))
	alloc(&bk.rest, restN)
	if err != nil {
		return false, err
	}
	t.bk = bk
	return true, nil
}

// buckets reports ZeRO 2's buckets (the gradients live in them, not in
// an arena).
func (t *Engine) buckets() bool { return t.bk != nil && !t.bk.whole }

// piece is the gradient buffer of run r.
func (t *Engine) piece(r run) gbuf {
	bk := t.bk
	var g gbuf
	switch r.buf {
	case bufIS:
		return gbuf{f: t.is.g}
	case bufBig:
		g = bk.big
	case bufLayer:
		g = gbuf{f: bk.layer}
	case bufRest:
		g = gbuf{f: bk.rest}
	case bufLayerB:
		g = gbuf{b: bk.layB, bf: true}
	case bufArena:
		g = gbuf{f: t.grad}
	case bufArenaB:
		g = gbuf{b: t.gradB, bf: true}
	}
	return g.slice(r.at, r.at+r.n)
}

// gradParam is parameter i's f32 gradient buffer: its window of the
// arena, or of its bucket (a layer's only while that layer's bucket is
// open).
func (t *Engine) gradParam(i, n int) cuda.Buf {
	p := t.S.params[i]
	if !t.buckets() {
		if gl := t.gl; gl != nil {
			if gl.bf[i] {
				panic(fmt.Sprintf("gpu: f32 gradient of %s, kept in bf16", p.name))
			}
			return t.grad.Slice(gl.at[i], gl.at[i]+n)
		}
		return t.grad.Slice(p.aoff, p.aoff+n)
	}
	g := t.bucketGrad(i, n)
	if g.bf {
		panic(fmt.Sprintf("gpu: f32 gradient of %s, kept in bf16", p.name))
	}
	return g.f
}

// bucketGrad is parameter i's first n gradient elements in its bucket
// (a layer's only while that layer's bucket is open).
func (t *Engine) bucketGrad(i, n int) gbuf {
	w := t.bk.where[i]
	if w.layer >= 0 && w.layer != t.bk.cur {
		panic(fmt.Sprintf("gpu: gradient of %s outside its layer's bucket (layer %d open)", t.S.params[i].name, t.bk.cur))
	}
	return t.piece(run{buf: w.buf, n: n, at: w.at})
}

// openLayer makes the layer bucket hold layer l's gradient (zeroed, as
// the arena's window of a tensor no kernel writes stays zero).
func (t *Engine) openLayer(l int) error {
	if !t.buckets() {
		return nil
	}
	t.bk.cur = l
	d := t.S.d
	return firstErr(d.Zero(t.bk.layer), d.Zero(wholeWords(t.bk.layB)))
}

// wholeWords is a whole bf16 allocation as the f32 words it takes (to
// zero it: an odd count's last word is the allocation's own).
func wholeWords(b cuda.BF16) cuda.Buf { return cuda.Buf{Ptr: b.Ptr, N: (b.N + 1) / 2} }

// flush sends the pieces rs to the sink and adds this rank's part of the
// reduced pieces to the shard's gradient sum.
func (t *Engine) flush(rs []run) error {
	bk, sh := t.bk, t.shard
	if bk == nil {
		return nil
	}
	for _, r := range rs {
		b := t.piece(r)
		if err := bk.sink(r.off, b.comm()); err != nil {
			return fmt.Errorf("gradient bucket [%d,%d): %w", r.off, r.off+r.n, err)
		}
		lo, hi := max(sh.lo, r.off), min(sh.hi, r.off+r.n)
		if lo >= hi {
			continue
		}
		if err := t.sumShard(lo, hi, b.slice(lo-r.off, hi-r.off), bk.first); err != nil {
			return err
		}
	}
	return nil
}

// flushTail flushes the embedding, the other tensors outside the layers
// (ZeRO 1: the whole arena) and the intermediate-state projection (behind
// the student's arena).
func (t *Engine) flushTail() error {
	if t.bk == nil {
		return nil
	}
	rs := t.bk.tail
	if t.is != nil {
		rs = append(rs[:len(rs):len(rs)], run{buf: bufIS, off: t.S.arenaN, n: t.is.g.N})
	}
	return t.flush(rs)
}

// embedBackwardBF16 adds the lookup's gradient (t.g, the gradient of the
// embedded rows) to the embedding's bf16 gradient dst: the rows are
// summed per distinct token in f32 (the micro-batch's ids are on the
// host) in the backward pass's free [rows, H] scratch dh, then each sum
// is added to its bf16 row with one rounding.
func (t *Engine) embedBackwardBF16(dst cuda.BF16) error {
	s, d, bk := t.S, t.S.d, t.bk
	rows, H := s.Batch*s.Seq, s.Cfg.HiddenSize
	ids := s.hostIDs[:rows]
	u := append(bk.hostU[:0], ids...)
	slices.Sort(u)
	u = slices.Compact(u)
	bk.hostU = u
	for r, id := range ids {
		k, _ := slices.BinarySearch(u, id)
		bk.hostM[r] = int32(k)
	}
	n := len(u)
	scratch := t.dh.Slice(0, n*H)
	return firstErr(
		d.CopyFromInt32(bk.uniq.Slice(0, n), u),
		d.CopyFromInt32(bk.rowMap, bk.hostM),
		d.Zero(scratch),
		d.EmbeddingBackward(scratch, t.g, bk.rowMap, rows, H),
		d.AddRowsBF16(dst, scratch, bk.uniq, n, H))
}
