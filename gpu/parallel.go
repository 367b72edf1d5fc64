//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// The engine's part of data parallelism (distill.Parallel): its arena is
// the student's weights (S.W, in parameter order) followed by the
// intermediate-state projection, and the core reduces and gathers the
// device buffers through the communicator (NCCL; on the emulator the
// "device" memory is host memory that MPI reduces).

// shard is the engine's part of the arena under ZeRO: moments for [lo, hi)
// only, and with ownGrad the shard's gradient summed over the step (ZeRO
// 2, and ZeRO 1 with bf16 gradients, which the engine reduces itself).
type shard struct {
	lo, hi  int
	ownGrad bool
	m1, m2  cuda.Buf // hi-lo moments
	w       cuda.Buf // hi-lo f32 master weights (masters: the student's matrices are bf16 only)
	// the gradient sum (ownGrad): g, f32 in the arena's layout, or with
	// bf16 gradients and one micro-batch per rank (mixed) gB and gF, the
	// bf16 and the f32 gradients' elements (segs)
	g     cuda.Buf
	gB    cuda.BF16
	gF    cuda.Buf
	segs  []seg
	nB    int  // the shard's bf16-gradient elements
	mixed bool // the step's sum is in gB and gF
}

// seg is a stretch [lo, hi) of the shard's arena whose gradients are of
// one precision (bf16: in gB at at; else in gF at at).
type seg struct {
	lo, hi, at int
	bf         bool
}

// gradAt is the shard's gradient sum of arena elements [lo, hi), which
// lie in one tensor (or one run of tensors of one precision).
func (sh *shard) gradAt(lo, hi int) gbuf {
	if !sh.mixed {
		return gbuf{f: sh.g.Slice(lo-sh.lo, hi-sh.lo)}
	}
	k, _ := slices.BinarySearchFunc(sh.segs, lo, func(s seg, x int) int { return cmp.Compare(s.hi, x+1) })
	if k == len(sh.segs) || sh.segs[k].lo > lo || sh.segs[k].hi < hi {
		panic(fmt.Sprintf("gpu: gradient [%d,%d) spans the shard's precisions", lo, hi))
	}
	s := sh.segs[k]
	if s.bf {
		return gbuf{b: sh.gB.Slice(s.at+lo-s.lo, s.at+hi-s.lo), bf: true}
	}
	return gbuf{f: sh.gF.Slice(s.at+lo-s.lo, s.at+hi-s.lo)}
}

// sumShard adds src, the reduced gradient of arena elements [lo, hi), to
// the shard's sum (first: sets it).
func (t *Engine) sumShard(lo, hi int, src gbuf, first bool) error {
	d := t.S.d
	dst := t.shard.gradAt(lo, hi)
	switch {
	case dst.bf != src.bf && dst.bf:
		return fmt.Errorf("gpu: f32 gradient [%d,%d) into the shard's bf16 sum", lo, hi)
	case dst.bf:
		if !first {
			return fmt.Errorf("gpu: the shard's bf16 gradient sum over several micro-batches")
		}
		return d.CopyBF16(dst.b, src.b)
	case src.bf && first:
		return d.FromBF16(dst.f, src.b)
	case src.bf:
		return d.AddBF16ToF32(dst.f, src.b)
	}
	return sumInto(d, dst.f, src.f, first)
}

// shardSums makes the shard's gradient sum ready for a step of n
// micro-batches over all ranks: with bf16 gradients, f32 when this rank
// accumulates several (allocated once it first does), else mixed.
func (t *Engine) shardSums(n int) error {
	sh := t.shard
	if sh.nB == 0 {
		return nil // f32 gradients: g, from Shard
	}
	sh.mixed = n <= t.bk.ranks
	var err error
	if sh.mixed {
		if sh.gB.N == 0 && sh.nB > 0 {
			if sh.gB, err = t.allocB(sh.nB); err != nil {
				return err
			}
		}
		if nF := sh.hi - sh.lo - sh.nB; sh.gF.N == 0 && nF > 0 {
			if sh.gF, err = t.alloc(nF); err != nil {
				return err
			}
		}
		return nil
	}
	if sh.g.N == 0 && sh.hi > sh.lo {
		if sh.g, err = t.alloc(sh.hi - sh.lo); err != nil {
			return err
		}
	}
	return nil
}

// commBuf is b as a communicator buffer: device memory, or on the
// emulator the host memory it is.
func commBuf(b cuda.Buf) comm.Buffer {
	if h := cuda.HostView(b); h != nil {
		return comm.Host(h)
	}
	return comm.Device{Ptr: uintptr(b.Ptr), N: b.N}
}

// Grads implements distill.Parallel: the step's gradient (the backward
// pass's own with ZeRO 2, the accumulation arena otherwise) and the
// projection's.
func (t *Engine) Grads() []comm.Buffer {
	if t.bk != nil {
		return nil // reduced bucket by bucket (SetGradSink)
	}
	out := []comm.Buffer{commBuf(t.stepGrad())}
	if t.gl != nil { // the f32 and bf16 arenas (stage 0: any pieces)
		out = append(out, commBufB(t.stepGradB()))
	}
	if t.is != nil {
		out = append(out, commBuf(t.is.g))
	}
	return out
}

// Weights implements distill.Parallel.
func (t *Engine) Weights() []comm.Buffer {
	if t.masters() {
		return nil // GatherWeights
	}
	out := []comm.Buffer{commBuf(t.S.W)}
	if t.is != nil {
		out = append(out, commBuf(t.is.w))
	}
	return out
}

// Gathered implements distill.Parallel: the bf16 shadow follows the
// gathered weights.
func (t *Engine) Gathered() error {
	if t.masters() {
		return nil // GatherWeights rounded each chunk
	}
	if t.S.bf16 {
		return t.S.RefreshBF16()
	}
	return nil
}

// arenaLen is the data-parallel arena's length: the student's
// parameters, then the intermediate-state projection's.
func (t *Engine) arenaLen() int {
	if t.is != nil {
		return t.S.arenaN + t.is.w.N
	}
	return t.S.arenaN
}

// arenaParts are the engine's tensors as (arena offset, weights, gradient,
// full moments) — the moments only while unsharded.
type arenaPart struct {
	off, n  int
	info    model.TensorInfo
	w, g    cuda.Buf
	m1, m2  cuda.Buf
	isProjn bool
}

func (t *Engine) arenaParts() []arenaPart {
	g := t.stepGrad()
	var out []arenaPart
	for _, p := range t.S.params {
		ap := arenaPart{off: p.aoff, n: p.n, info: model.TensorInfo{Name: p.name, Shape: p.shape}}
		if p.off >= 0 {
			ap.w = t.S.W.Slice(p.off, p.off+p.n)
		}
		if g.N != 0 && t.gl == nil { // none with buckets (the shard's sum is the gradient)
			ap.g = g.Slice(p.aoff, p.aoff+p.n)
		}
		out = append(out, ap)
	}
	if l := t.is; l != nil {
		out = append(out, arenaPart{off: t.S.arenaN, n: l.w.N, info: model.TensorInfo{Name: distill.ISProjName, Shape: []int{l.ht, l.hs}},
			w: l.w, g: l.g, isProjn: true})
	}
	return out
}

// Shard implements distill.Parallel: the full moments are freed and
// shard-sized ones (zeroed) take their place.
func (t *Engine) Shard(lo, hi int, ownGrad bool) error {
	if t.off != nil {
		return errOffloadZero()
	}
	d := t.S.d
	n := t.arenaLen()
	if lo < 0 || hi > n || lo > hi {
		return fmt.Errorf("gpu: shard [%d,%d) outside the %d parameters", lo, hi, n)
	}
	if t.bk != nil {
		return fmt.Errorf("gpu: Shard after SetGradSink")
	}
	// bf16 gradients: the engine reduces them itself (SetGradSink) into
	// its shard's sum at ZeRO 1 too
	sh := &shard{lo: lo, hi: hi, ownGrad: ownGrad || t.gl != nil}
	t.shardSegs(sh)
	var err error
	alloc := func(dst *cuda.Buf) {
		if err != nil || hi == lo {
			return
		}
		if *dst, err = t.alloc(hi - lo); err == nil {
			err = d.Zero(*dst)
		}
	}
	alloc(&sh.m1)
	alloc(&sh.m2)
	if sh.ownGrad && sh.nB == 0 {
		alloc(&sh.g) // f32 gradients (bf16 ones: shardSums)
	}
	if t.masters() {
		alloc(&sh.w)
		if err == nil {
			err = t.fillMasters(sh)
		}
	}
	if err != nil {
		return err
	}
	t.release(t.mom1, t.mom2)
	if t.is != nil {
		t.release(t.is.m1, t.is.m2)
		t.is.m1, t.is.m2 = cuda.Buf{}, cuda.Buf{}
	}
	t.mom1, t.mom2 = cuda.Buf{}, cuda.Buf{}
	t.shard = sh
	return nil
}

// shardSegs lays out the shard's mixed gradient sum: its stretches of
// bf16 and of f32 gradients, each packed in its buffer.
func (t *Engine) shardSegs(sh *shard) {
	nF := 0
	part := func(off, n int, bf bool) {
		lo, hi := max(sh.lo, off), min(sh.hi, off+n)
		if lo >= hi {
			return
		}
		at := &nF
		if bf {
			at = &sh.nB
		}
		if k := len(sh.segs) - 1; k >= 0 && sh.segs[k].bf == bf && sh.segs[k].hi == lo {
			sh.segs[k].hi = hi
		} else {
			sh.segs = append(sh.segs, seg{lo: lo, hi: hi, at: *at, bf: bf})
		}
		*at += hi - lo
	}
	for i, p := range t.S.params {
		part(p.aoff, p.n, t.gradBF(i))
	}
	if t.is != nil {
		part(t.S.arenaN, t.is.w.N, false)
	}
}

// release frees owned buffers early.
func (t *Engine) release(bs ...cuda.Buf) { releaseOwned(t.S.d, &t.owned, bs...) }

// overlap is part p's piece inside the shard: its range in the part and
// in the shard's buffers (ok false when none).
func (sh *shard) overlap(p arenaPart) (a, z, sa int, ok bool) {
	lo, hi := max(sh.lo, p.off), min(sh.hi, p.off+p.n)
	if lo >= hi {
		return 0, 0, 0, false
	}
	return lo - p.off, hi - p.off, lo - sh.lo, true
}

// shardGrads are the gradient's pieces inside the shard.
func (t *Engine) shardGrads() []gbuf {
	sh := t.shard
	var out []gbuf
	if sh.ownGrad {
		all := []gbuf{{f: sh.g}}
		if sh.mixed {
			all = []gbuf{{f: sh.gF}, {b: sh.gB, bf: true}}
		}
		for _, g := range all {
			if g.len() > 0 {
				out = append(out, g)
			}
		}
		return out
	}
	for _, p := range t.arenaParts() {
		if a, z, _, ok := sh.overlap(p); ok {
			out = append(out, gbuf{f: p.g.Slice(a, z)})
		}
	}
	return out
}

// shardSumSquares is Σ g² over the shard's gradient.
func (t *Engine) shardSumSquares() (float64, error) {
	var fs []cuda.Buf
	var bs []cuda.BF16
	for _, g := range t.shardGrads() {
		if g.bf {
			bs = append(bs, g.b)
		} else {
			fs = append(fs, g.f)
		}
	}
	ss, err := t.S.d.SumSquares(fs...)
	if err != nil || len(bs) == 0 {
		return ss, err
	}
	sb, err := t.S.d.SumSquaresBF16(bs...)
	return ss + sb, err
}

// AccumulateShard implements distill.Parallel.
func (t *Engine) AccumulateShard(first bool) error {
	sh, d := t.shard, t.S.d
	if sh == nil || !sh.ownGrad {
		return fmt.Errorf("gpu: AccumulateShard without a gradient shard")
	}
	if sh.nB > 0 {
		return fmt.Errorf("gpu: AccumulateShard: bf16 gradients are reduced through SetGradSink")
	}
	for _, p := range t.arenaParts() {
		a, z, sa, ok := sh.overlap(p)
		if !ok {
			continue
		}
		dst, src := sh.g.Slice(sa, sa+z-a), p.g.Slice(a, z)
		if err := sumInto(d, dst, src, first); err != nil {
			return err
		}
	}
	return nil
}

// updateShard is Update under ZeRO: clipping and AdamW on the shard only.
func (t *Engine) updateShard(lr float64, clip float32, step int) error {
	sh, d := t.shard, t.S.d
	if clip != 1 {
		for _, g := range t.shardGrads() {
			var err error
			if g.bf {
				err = d.ScaleBF16(g.b, clip)
			} else {
				err = d.Scale(g.f, clip)
			}
			if err != nil {
				return err
			}
		}
	}
	for _, p := range t.arenaParts() {
		a, z, sa, ok := sh.overlap(p)
		if !ok {
			continue
		}
		var g gbuf
		if sh.ownGrad {
			g = sh.gradAt(sh.lo+sa, sh.lo+sa+z-a)
		} else {
			g = gbuf{f: p.g.Slice(a, z)}
		}
		sc := t.Optim.Scalars(lr, step, p.info)
		var w cuda.Buf
		if t.masters() {
			w = sh.w.Slice(sa, sa+z-a)
		} else {
			w = p.w.Slice(a, z)
		}
		m1, m2 := sh.m1.Slice(sa, sa+z-a), sh.m2.Slice(sa, sa+z-a)
		var err error
		if g.bf {
			err = d.AdamWBF16Grad(w, g.b, m1, m2, sc)
		} else {
			err = d.AdamW(w, g.f, m1, m2, sc)
		}
		if err != nil {
			return err
		}
	}
	return nil // the bf16 shadow is refreshed once the weights are gathered
}

func (t *Engine) momentRange(lo, n int) (cuda.Buf, cuda.Buf, error) {
	sh := t.shard
	if sh == nil {
		return cuda.Buf{}, cuda.Buf{}, fmt.Errorf("gpu: moments by range need a shard (Shard)")
	}
	if lo < sh.lo || lo+n > sh.hi {
		return cuda.Buf{}, cuda.Buf{}, fmt.Errorf("gpu: moments [%d,%d) outside this rank's shard [%d,%d)", lo, lo+n, sh.lo, sh.hi)
	}
	return sh.m1.Slice(lo-sh.lo, lo-sh.lo+n), sh.m2.Slice(lo-sh.lo, lo-sh.lo+n), nil
}

// ReadMoments implements distill.Parallel.
func (t *Engine) ReadMoments(lo int, m1, m2 []float32) error {
	return t.moveMoments(lo, m1, m2, t.S.d.Download)
}

// WriteMoments implements distill.Parallel.
func (t *Engine) WriteMoments(lo int, m1, m2 []float32) error {
	return t.moveMoments(lo, m1, m2, t.copyUp)
}

// moveMoments moves the shard's moments of arena elements [lo, lo+n)
// to or from the non-nil host slices m1 and m2 (of length n).
func (t *Engine) moveMoments(lo int, m1, m2 []float32, move func(host []float32, buf cuda.Buf) error) error {
	b1, b2, err := t.momentRange(lo, max(len(m1), len(m2)))
	if err != nil {
		return err
	}
	if m1 != nil {
		if err := move(m1, b1); err != nil {
			return err
		}
	}
	if m2 != nil {
		return move(m2, b2)
	}
	return nil
}

// sumInto copies src into dst for a step's first micro-batch and adds it
// after: a gradient shard's accumulation.
func sumInto(d *cuda.Device, dst, src cuda.Buf, first bool) error {
	if first {
		return d.CopyBuf(dst, src)
	}
	return d.Add(dst, src)
}
