//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Sharded master weights (bf16 under ZeRO, EngineConfig.BF16 with Zero ≥
// 1): the student keeps its matrices only in bf16 (Options.WeightsBF16,
// norms and biases in f32 as well), and each rank holds the f32 master
// weights of its shard of the arena beside its moments (shard.w). After
// the update the core gathers the weights through GatherWeights, a
// staging chunk of the arena at a time: each rank puts its updated
// masters' part of the chunk in place, the chunk is all-gathered in f32,
// and every rank rounds it into its bf16 weights (the f32 norms and
// biases copied as they are): the values the whole-master engine's
// RefreshBF16 gives, with 4 B per parameter fewer on each rank.

// masters reports sharded master weights.
func (t *Engine) masters() bool { return t.S.weightsBF16 && t.S.train }

// fillMasters sets the shard's master weights from the initial weights
// (the intermediate-state projection from its device copy).
func (t *Engine) fillMasters(sh *shard) error {
	d := t.S.d
	var host []float32
	for _, p := range t.arenaParts() {
		a, z, sa, ok := sh.overlap(p)
		if !ok {
			continue
		}
		dst := sh.w.Slice(sa, sa+z-a)
		if p.isProjn {
			if err := d.CopyBuf(dst, t.is.w.Slice(a, z)); err != nil {
				return err
			}
			continue
		}
		if t.src == nil {
			return fmt.Errorf("gpu: sharded master weights need the initial weights (EngineConfig.Weights)")
		}
		if cap(host) < p.n {
			host = make([]float32, p.n)
		}
		host = host[:p.n]
		if err := t.src.ReadF32(p.info.Name, host); err != nil {
			return fmt.Errorf("gpu: master weights: %w", err)
		}
		if err := d.CopyFrom(dst, host[a:z]); err != nil {
			return err
		}
	}
	return nil
}

// Weights under sharded masters: none (GatherWeights gathers them).
func (t *Engine) weightsGathered() bool { return t.masters() && t.shard != nil }

// GatherWeights implements distill.WeightGatherer: gather(a, z, b) must
// all-gather arena elements [a, z) held in b (each rank's part of its
// shard in place).
func (t *Engine) GatherWeights(gather func(a, z int, b comm.Buffer) error) (bool, error) {
	if !t.weightsGathered() {
		return false, nil
	}
	s, d, sh := t.S, t.S.d, t.shard
	N := t.arenaLen()
	if t.stage.N == 0 {
		var err error
		if t.stage, err = t.alloc(min(N, bf16Chunk)); err != nil {
			return true, err
		}
	}
	parts := t.arenaParts()
	for a := 0; a < N; a += t.stage.N {
		z := min(a+t.stage.N, N)
		st := t.stage.Slice(0, z-a)
		if lo, hi := max(a, sh.lo), min(z, sh.hi); lo < hi {
			if err := d.CopyBuf(st.Slice(lo-a, hi-a), sh.w.Slice(lo-sh.lo, hi-sh.lo)); err != nil {
				return true, err
			}
		}
		if err := gather(a, z, commBuf(st)); err != nil {
			return true, err
		}
		for _, p := range parts {
			x0, x1 := max(a, p.off), min(z, p.off+p.n)
			if x0 >= x1 {
				continue
			}
			src := st.Slice(x0-a, x1-a)
			i0, i1 := x0-p.off, x1-p.off
			if p.isProjn {
				if err := d.CopyBuf(t.is.w.Slice(i0, i1), src); err != nil {
					return true, err
				}
				continue
			}
			q := s.params[s.byName[p.info.Name]]
			if q.boff >= 0 {
				if err := d.ToBF16(s.WB.Slice(q.boff+i0, q.boff+i1), src); err != nil {
					return true, err
				}
			}
			if q.off >= 0 {
				if err := d.CopyBuf(s.W.Slice(q.off+i0, q.off+i1), src); err != nil {
					return true, err
				}
			}
		}
	}
	return true, nil
}

// masterRange is the shard's master weights [lo, lo+n).
func (t *Engine) masterRange(lo, n int) (cuda.Buf, error) {
	sh := t.shard
	if sh == nil || !t.masters() {
		return cuda.Buf{}, fmt.Errorf("gpu: no sharded master weights")
	}
	if lo < sh.lo || lo+n > sh.hi {
		return cuda.Buf{}, fmt.Errorf("gpu: master weights [%d,%d) outside this rank's shard [%d,%d)", lo, lo+n, sh.lo, sh.hi)
	}
	return sh.w.Slice(lo-sh.lo, lo-sh.lo+n), nil
}

// ReadMasters implements distill.MasterShard: the f32 master weights of
// arena elements [lo, lo+len(dst)) (in the shard), or false without
// sharded masters.
func (t *Engine) ReadMasters(lo int, dst []float32) (bool, error) {
	return t.moveMasters(lo, dst, t.S.d.Download)
}

// WriteMasters implements distill.MasterShard (a resume: the next gather
// makes the bf16 weights follow).
func (t *Engine) WriteMasters(lo int, src []float32) (bool, error) {
	return t.moveMasters(lo, src, t.copyUp)
}

// moveMasters moves the shard's master weights of arena elements [lo,
// lo+len(host)) to or from host, or reports false without sharded masters.
func (t *Engine) moveMasters(lo int, host []float32, move func(host []float32, buf cuda.Buf) error) (bool, error) {
	if !t.weightsGathered() {
		return false, nil
	}
	if len(host) == 0 {
		return true, nil
	}
	b, err := t.masterRange(lo, len(host))
	if err != nil {
		return true, err
	}
	return true, move(host, b)
}

// writeParamMasters sets tensor name's weights under sharded masters: the
// bf16 store (and f32 copy) from w, and the shard's masters where they
// overlap.
func (t *Engine) writeParamMasters(name string, w []float32) error {
	s, d := t.S, t.S.d
	i, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("gpu: no trained tensor %q on the device", name)
	}
	p := s.params[i]
	if len(w) != p.n {
		return fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", name, p.n, len(w))
	}
	if p.off >= 0 {
		if err := d.CopyFrom(s.W.Slice(p.off, p.off+p.n), w); err != nil {
			return err
		}
	}
	if p.boff >= 0 {
		tmp, err := d.Alloc(min(p.n, bf16Chunk))
		if err != nil {
			return err
		}
		defer d.Free(tmp)
		if err := s.uploadBF16(s.WB.Slice(p.boff, p.boff+p.n), w, tmp); err != nil {
			return err
		}
	}
	return t.writeShardMasters(p.aoff, w)
}

// writeShardMasters copies w, the weights of arena elements [off,
// off+len(w)), into the shard's masters where they overlap (none without
// a shard).
func (t *Engine) writeShardMasters(off int, w []float32) error {
	sh := t.shard
	if sh == nil {
		return nil
	}
	if lo, hi := max(sh.lo, off), min(sh.hi, off+len(w)); lo < hi {
		return t.S.d.CopyFrom(sh.w.Slice(lo-sh.lo, hi-sh.lo), w[lo-off:hi-off])
	}
	return nil
}

var _ distill.MasterShard = (*Engine)(nil)
