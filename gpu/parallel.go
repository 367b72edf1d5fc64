//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

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
// only, and with ownGrad the shard's gradient summed over the step.
type shard struct {
	lo, hi  int
	ownGrad bool
	m1, m2  cuda.Buf // hi-lo moments
	g       cuda.Buf // hi-lo gradient sum (ownGrad)
	w       cuda.Buf // hi-lo f32 master weights (masters: the student's matrices are bf16 only)
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
		if g.N != 0 { // none with buckets (the shard's sum is the gradient)
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
	n := t.S.arenaN
	if t.is != nil {
		n += t.is.w.N
	}
	if lo < 0 || hi > n || lo > hi {
		return fmt.Errorf("gpu: shard [%d,%d) outside the %d parameters", lo, hi, n)
	}
	if t.bk != nil {
		return fmt.Errorf("gpu: Shard after SetGradSink")
	}
	if t.gl != nil {
		return errBF16Grads("Shard")
	}
	sh := &shard{lo: lo, hi: hi, ownGrad: ownGrad}
	var err error
	alloc := func(dst *cuda.Buf) {
		if err != nil || hi == lo {
			return
		}
		if *dst, err = d.Alloc(hi - lo); err == nil {
			t.owned = append(t.owned, *dst)
			err = d.Zero(*dst)
		}
	}
	alloc(&sh.m1)
	alloc(&sh.m2)
	if ownGrad {
		alloc(&sh.g)
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

// release frees owned buffers early.
func (t *Engine) release(bs ...cuda.Buf) {
	for _, b := range bs {
		for i, o := range t.owned {
			if o.Ptr == b.Ptr && b.Ptr != 0 {
				t.S.d.Free(o)
				t.owned = append(t.owned[:i], t.owned[i+1:]...)
				break
			}
		}
	}
}

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
func (t *Engine) shardGrads() []cuda.Buf {
	sh := t.shard
	if sh.ownGrad {
		if sh.g.N == 0 {
			return nil
		}
		return []cuda.Buf{sh.g}
	}
	var out []cuda.Buf
	for _, p := range t.arenaParts() {
		if a, z, _, ok := sh.overlap(p); ok {
			out = append(out, p.g.Slice(a, z))
		}
	}
	return out
}

// AccumulateShard implements distill.Parallel.
func (t *Engine) AccumulateShard(first bool) error {
	sh, d := t.shard, t.S.d
	if sh == nil || !sh.ownGrad {
		return fmt.Errorf("gpu: AccumulateShard without a gradient shard")
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
			if err := d.Scale(g, clip); err != nil {
				return err
			}
		}
	}
	for _, p := range t.arenaParts() {
		a, z, sa, ok := sh.overlap(p)
		if !ok {
			continue
		}
		var g cuda.Buf
		if sh.ownGrad {
			g = sh.g.Slice(sa, sa+z-a)
		} else {
			g = p.g.Slice(a, z)
		}
		sc := t.Optim.Scalars(lr, step, p.info)
		var w cuda.Buf
		if t.masters() {
			w = sh.w.Slice(sa, sa+z-a)
		} else {
			w = p.w.Slice(a, z)
		}
		if err := d.AdamW(w, g, sh.m1.Slice(sa, sa+z-a), sh.m2.Slice(sa, sa+z-a), sc); err != nil {
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
	b1, b2, err := t.momentRange(lo, max(len(m1), len(m2)))
	if err != nil {
		return err
	}
	if m1 != nil {
		if err := t.S.d.Download(m1, b1); err != nil {
			return err
		}
	}
	if m2 != nil {
		return t.S.d.Download(m2, b2)
	}
	return nil
}

// WriteMoments implements distill.Parallel.
func (t *Engine) WriteMoments(lo int, m1, m2 []float32) error {
	b1, b2, err := t.momentRange(lo, max(len(m1), len(m2)))
	if err != nil {
		return err
	}
	if m1 != nil {
		if err := t.S.d.CopyFrom(b1, m1); err != nil {
			return err
		}
	}
	if m2 != nil {
		return t.S.d.CopyFrom(b2, m2)
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
