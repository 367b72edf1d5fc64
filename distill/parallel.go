package distill

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/minitron-dev/minitron/comm"
)

// Parallel is what an engine supplies to train data-parallel (Config.Comm
// with more than one rank). Its state is seen in arena order: the tensors
// of Tensors one after another, each row-major, so that arena element k is
// the same number on every rank and in every world size. The core reduces
// and gathers these buffers through the communicator; the engine only
// computes, so data parallelism is written once for every device.
type Parallel interface {
	// Grads is the step's gradient as the Micro calls since the step
	// began left it, in pieces whose concatenation is the arena (one per
	// tensor, or a few larger ones).
	Grads() []comm.Buffer
	// Weights is every trained weight in pieces whose concatenation is
	// the arena.
	Weights() []comm.Buffer
	// Shard makes the engine hold AdamW moments for arena elements
	// [lo, hi) only (ZeRO): GradSumSquares and Update then cover only
	// those, reading the reduced gradient there. With ownGrad (ZeRO 2)
	// the engine keeps no gradient over the step's micro-batches: Micro
	// leaves the micro-batch's own gradient in Grads (micro-batch index
	// ignored, gradient still scaled by 1/n), which the core reduces to
	// its owners before AccumulateShard adds this rank's part to a
	// shard-sized sum.
	Shard(lo, hi int, ownGrad bool) error
	// AccumulateShard adds arena elements [lo, hi) of Grads to the shard's
	// gradient (first: sets it).
	AccumulateShard(first bool) error
	// Gathered tells the engine that its weights were changed in place
	// (all-gathered after a sharded Update): e.g. to refresh copies of
	// them in another precision.
	Gathered() error
	// ReadMoments and WriteMoments copy the moments of arena elements
	// [lo, lo+len(m1)), which must lie in the shard.
	ReadMoments(lo int, m1, m2 []float32) error
	WriteMoments(lo int, m1, m2 []float32) error
}

// GradBuckets is what an engine supplies, beside Parallel, to reduce its
// gradient itself: under ZeRO 2 bucket by bucket as the backward pass
// produces it (a layer at a time), so that no rank ever holds a
// micro-batch's whole gradient; under ZeRO 1 (where the engine chooses
// to, e.g. for bf16 gradients) its whole gradient after each backward
// pass. After SetGradSink, Micro calls sink with each finished bucket's
// pieces (arena offset and buffer, f32 or bf16; the core reduces each
// part to the rank owning it), then adds this rank's part of the reduced
// piece to the shard's gradient (the step's first micro-batch, index 0,
// sets it): Grads, AccumulateShard and the step's reduction are then
// unused. ranks is the world size (a rank runs the step's micro-batches
// / ranks). It reports false when the engine leaves the reduction to
// the core at this stage.
type GradBuckets interface {
	SetGradSink(sink func(off int, b comm.Buffer) error, ranks int) (bool, error)
}

// MasterShard is what an engine supplies, beside Parallel, when it keeps
// only its shard's f32 master weights (mixed precision under ZeRO: its
// weights are the bf16 copies the products read). Each method reports
// false when the engine holds whole master weights after all.
type MasterShard interface {
	// GatherWeights refreshes every rank's weights from the updated
	// shards: it calls gather(a, z, b) for consecutive ranges [a, z) of
	// the arena, b holding this rank's part of its shard in place, for
	// the core to all-gather (then the engine rounds b into its weights).
	GatherWeights(gather func(a, z int, b comm.Buffer) error) (bool, error)
	// ReadMasters and WriteMasters copy the master weights of arena
	// elements [lo, lo+len), which must lie in the shard.
	ReadMasters(lo int, dst []float32) (bool, error)
	WriteMasters(lo int, src []float32) (bool, error)
}

// shardedMasters reports whether eng keeps only its shard's master weights.
func shardedMasters(eng Parallel) (MasterShard, bool) {
	ms, ok := eng.(MasterShard)
	if !ok {
		return nil, false
	}
	on, err := ms.ReadMasters(0, nil)
	return ms, on && err == nil
}

// Zero stages (Config.Zero).
const (
	ZeroDefault    = 0  // stage 1 with more than one rank
	ZeroReplicated = -1 // every rank holds all optimizer state (stage 0)
)

// dataParallel is a Trainer's part of a run over more than one rank: the
// communicator, the ZeRO stage and this rank's shard of the arena.
type dataParallel struct {
	c      comm.Communicator
	eng    Parallel
	stage  int   // 0, 1, 2
	bucket bool  // through GradBuckets: Micro reduces the gradient
	n      int   // arena elements
	counts []int // per rank (comm.Split)
	lo, hi int   // this rank's shard
	// commTime is the time spent in the step's collectives (gradients,
	// metrics, weights), summed since the run began.
	commTime time.Duration
}

// timed runs f, adding its duration to the communication time.
func (d *dataParallel) timed(f func() error) error {
	t0 := time.Now()
	err := f()
	d.commTime += time.Since(t0)
	return err
}

// CommTime is the time this trainer spent in collectives (0 alone).
func (t *Trainer) CommTime() time.Duration {
	if t.dp == nil {
		return 0
	}
	return t.dp.commTime
}

// newDataParallel sets up stage on eng for the ranks of c.
func newDataParallel(c comm.Communicator, eng Engine, stage int) (*dataParallel, error) {
	pe, ok := eng.(Parallel)
	if !ok {
		return nil, fmt.Errorf("data parallel over %d ranks: this device's engine (%T) does not train data-parallel", c.Size(), eng)
	}
	if stage < 0 || stage > 2 {
		return nil, fmt.Errorf("ZeRO stage %d: want 0, 1 or 2", stage)
	}
	d := &dataParallel{c: c, eng: pe, stage: stage}
	_, d.n = arenaOffsets(eng.Tensors())
	d.counts = comm.Split(d.n, c.Size())
	d.lo, d.hi = comm.Range(d.n, c.Size(), c.Rank())
	if stage > 0 {
		if err := pe.Shard(d.lo, d.hi, stage == 2); err != nil {
			return nil, err
		}
	}
	if gb, ok := eng.(GradBuckets); ok && stage > 0 {
		on, err := gb.SetGradSink(func(off int, b comm.Buffer) error {
			return d.timed(func() error { return d.reduceAt(off, b) })
		}, c.Size())
		if err != nil {
			return nil, err
		}
		d.bucket = on
	}
	return d, nil
}

// reduceAt sums arena elements [off, off+b.Len()) of b over the ranks onto
// the ranks owning them: one reduce per part inside one rank's shard.
func (d *dataParallel) reduceAt(off int, b comm.Buffer) error {
	if z := off + b.Len(); off < 0 || z > d.n {
		return fmt.Errorf("gradient bucket [%d,%d) outside the %d trained elements", off, z, d.n)
	}
	return d.parts(off, b, func(b comm.Buffer, root int) error { return d.c.Reduce(b, root) })
}

// parts calls f for each part of b (arena elements [off, off+b.Len()))
// inside one rank's shard, with that rank.
func (d *dataParallel) parts(off int, b comm.Buffer, f func(b comm.Buffer, root int) error) error {
	roff := comm.Offsets(d.counts)
	z := off + b.Len()
	for r := range d.counts {
		a, e := max(off, roff[r]), min(z, roff[r+1])
		if a < e {
			if err := f(comm.Slice(b, a-off, e-off), r); err != nil {
				return err
			}
		}
	}
	return nil
}

// share is this rank's micro-batches of the step's n: a contiguous, equal
// part (Config checks that n divides evenly).
func (d *dataParallel) share(n int) (lo, hi int) {
	return comm.Range(n, d.c.Size(), d.c.Rank())
}

// reduceGrads sums the gradients of Grads over the ranks: all of it on
// every rank (stage 0), or each rank's shard onto that rank (stages 1 and
// 2: a reduce-scatter over the engine's own buffers, one reduce per part
// of a piece inside one rank's shard).
func (d *dataParallel) reduceGrads() error {
	gs := d.eng.Grads()
	if d.stage == 0 {
		for _, g := range gs {
			if err := d.c.AllReduce(g); err != nil {
				return err
			}
		}
		return nil
	}
	return d.pieces(gs, func(b comm.Buffer, root int) error { return d.c.Reduce(b, root) }, nil)
}

// gatherWeights copies every rank's updated shard of the weights to all.
func (d *dataParallel) gatherWeights() error {
	if ms, ok := d.eng.(MasterShard); ok {
		done, err := ms.GatherWeights(func(a, z int, b comm.Buffer) error { return d.c.AllGather(b, d.countsIn(a, z)) })
		if done || err != nil {
			return err
		}
	}
	err := d.pieces(d.eng.Weights(), nil, func(b comm.Buffer, counts []int) error { return d.c.AllGather(b, counts) })
	if err != nil {
		return err
	}
	return d.eng.Gathered()
}

// countsIn is how many of arena elements [a, z) each rank's shard holds.
func (d *dataParallel) countsIn(a, z int) []int {
	roff := comm.Offsets(d.counts)
	counts := make([]int, len(d.counts))
	for r := range counts {
		counts[r] = max(0, min(z, roff[r+1])-max(a, roff[r]))
	}
	return counts
}

// pieces walks buffers whose concatenation is the arena: per part of a
// piece inside one rank's shard (perPart, with that rank), or per piece
// with the number of its elements in each rank's shard (perPiece).
func (d *dataParallel) pieces(bs []comm.Buffer, perPart func(b comm.Buffer, root int) error, perPiece func(b comm.Buffer, counts []int) error) error {
	o := 0
	for _, b := range bs {
		z := o + b.Len()
		if z > d.n {
			return fmt.Errorf("the engine's buffers hold more than the %d trained elements", d.n)
		}
		var err error
		if perPiece != nil {
			err = perPiece(b, d.countsIn(o, z))
		} else {
			err = d.parts(o, b, perPart)
		}
		if err != nil {
			return err
		}
		o = z
	}
	if o != d.n {
		return fmt.Errorf("the engine's buffers hold %d of the %d trained elements", o, d.n)
	}
	return nil
}

// stepParallel runs this rank's share of one optimizer step's
// micro-batches (n in the whole step) and reduces the gradients and the
// metrics over the ranks.
func (t *Trainer) stepParallel(local [][][]int32, n int, skipNonFinite bool) (StepMetrics, error) {
	d := t.dp
	m := StepMetrics{Step: t.Step + 1, LR: t.Sched.At(t.Step)}
	// ZeRO 2 reduced by the core: each micro-batch's own gradient goes to
	// its owners before the next
	perMicro := d.stage == 2 && !d.bucket
	for i, mb := range local {
		j := i
		if perMicro {
			j = 0
		}
		p, err := t.Engine.Micro(mb, j, n)
		if err != nil {
			return m, fmt.Errorf("step %d: %w", m.Step, err)
		}
		m.add(p, n)
		if perMicro {
			if err := d.timed(d.reduceGrads); err != nil {
				return m, fmt.Errorf("step %d: gradient reduction: %w", m.Step, err)
			}
			if err := d.eng.AccumulateShard(i == 0); err != nil {
				return m, fmt.Errorf("step %d: %w", m.Step, err)
			}
		}
	}
	if d.stage < 2 && !d.bucket {
		if err := d.timed(d.reduceGrads); err != nil {
			return m, fmt.Errorf("step %d: gradient reduction: %w", m.Step, err)
		}
	}
	v := []float64{m.Loss, m.CE, m.KL, m.RKL, m.IS, m.ISAlpha, 0}
	if d.stage > 0 {
		ss, err := t.Engine.GradSumSquares()
		if err != nil {
			return m, fmt.Errorf("step %d: gradient norm: %w", m.Step, err)
		}
		v[6] = ss
	}
	if err := d.timed(func() error { return d.c.AllReduceF64(v) }); err != nil {
		return m, fmt.Errorf("step %d: %w", m.Step, err)
	}
	m.Loss, m.CE, m.KL, m.RKL, m.IS, m.ISAlpha = v[0], v[1], v[2], v[3], v[4], v[5]
	ss := v[6]
	if d.stage == 0 {
		var err error
		if ss, err = t.Engine.GradSumSquares(); err != nil {
			return m, fmt.Errorf("step %d: gradient norm: %w", m.Step, err)
		}
	}
	if !finite(m.Loss) {
		return t.nonFinite(m, skipNonFinite, "loss", m.Loss)
	}
	m.GradNorm = math.Sqrt(ss)
	if !finite(m.GradNorm) {
		return t.nonFinite(m, skipNonFinite, "gradient norm", m.GradNorm)
	}
	if err := t.Engine.Update(m.LR, t.Optim.ClipScale(m.GradNorm), t.AdamStep+1); err != nil {
		return m, fmt.Errorf("step %d: update: %w", m.Step, err)
	}
	if d.stage > 0 {
		if err := d.timed(d.gatherWeights); err != nil {
			return m, fmt.Errorf("step %d: weights: %w", m.Step, err)
		}
	}
	t.AdamStep++
	t.Step++
	return m, nil
}

// saveSharded writes a checkpoint of a sharded run: rank 0 the weights
// into step-N.partial, then every rank its moments' shard there, then rank
// 0 the aux weights, the shard index and the trainer state, and renames it
// into place. The ranks agree after each stage, so a failure (or a rank
// killed mid-write) leaves step-N.partial, never a step-N that lacks a
// shard, and the previous checkpoint stays the latest.
func (r *run) saveSharded(st TrainerState) (string, error) {
	ck, d, rank := r.ck, r.tr.dp, r.c.rank()
	tmp := ck.partial(st.Step)
	var err error
	if rank == 0 {
		if tmp, err = ck.begin(st.Step); err == nil {
			if err = ck.writeWeights(tmp, r.cfg, r.tr.Engine, st.Step); err != nil {
				err = ck.fail(tmp, st.Step, err)
			}
		}
	}
	if err := r.agree(err); err != nil {
		return "", err
	}
	err = writeShard(filepath.Join(tmp, shardName(rank, d.c.Size())), d.eng, d.n, d.lo, d.hi, st.AdamStep)
	ms, masters := shardedMasters(d.eng)
	if err == nil && masters {
		err = writeRanges(filepath.Join(tmp, masterName(rank, d.c.Size())), masterMagic, d.n, d.lo, d.hi, st.AdamStep,
			func(a int, b []float32) error { _, err := ms.ReadMasters(a, b); return err })
	}
	if err != nil {
		err = fmt.Errorf("writing checkpoint of step %d: %w", st.Step, err)
	}
	if err := r.agree(err); err != nil {
		if rank == 0 {
			os.RemoveAll(tmp)
		}
		return "", err
	}
	hook("optimizer", st.Step)
	dir := filepath.Join(ck.root(), stepName(st.Step))
	if rank == 0 {
		ts, aux, _ := optimSections(r.tr.Engine)
		if len(aux) > 0 {
			err = writeAux(filepath.Join(tmp, auxFile), r.tr.Engine, aux)
		}
		if err == nil {
			err = writeShardIndex(tmp, ts, d.c.Size(), st.AdamStep, len(aux) > 0, masters)
		}
		if err != nil {
			err = ck.fail(tmp, st.Step, err)
		} else {
			dir, err = ck.finish(tmp, st)
		}
	}
	return dir, r.agree(err)
}
