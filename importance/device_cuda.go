//go:build minitron_cuda || minitron_cudaemu

package importance

import (
	"fmt"

	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// cudaPasses runs Compute's forward passes with gpu on GPU 0. The
// width statistics stay on the device (cuda.ImportanceStats: the same
// per-sample sequence reductions as Accumulator, summed over samples in
// float64) until fold merges their sums into the collector's accumulators,
// so Scores reduces them over samples exactly as on the CPU. Block
// Importance's Σ cos comes back per layer and pass (one float64).
type cudaPasses struct {
	d      *cuda.Device
	m      *gpu.Model
	cfg    *model.Config
	col    *Collector
	seqAgg int
	heads  []*cuda.ImportanceStats
	neur   []*cuda.ImportanceStats
	norms  [][2]*cuda.ImportanceStats
	all    []*cuda.ImportanceStats // every one of the above, to free
	hn     cuda.Buf                // [Batch·Seq, heads] per-head norms
	in     cuda.Buf                // copy of the current layer's input (BI)
	hooks  *gpu.Hooks
}

// newCUDAPasses uploads m's weights (from its source) for batches of up to
// batch sequences of up to seq tokens.
func newCUDAPasses(m *model.Model, col *Collector, opt Options, batch, seq int) (_ passes, err error) {
	cfg := m.Cfg
	p := &cudaPasses{cfg: cfg, col: col}
	switch opt.Aggregation.Seq {
	case SeqMean:
		p.seqAgg = cuda.SeqMean
	case SeqL2:
		p.seqAgg = cuda.SeqL2
	case SeqVar:
		p.seqAgg = cuda.SeqVar
	default:
		return nil, fmt.Errorf("importance on cuda: unknown sequence aggregation %q", opt.Aggregation.Seq)
	}
	defer func() {
		if err != nil {
			p.close()
			err = fmt.Errorf("importance on cuda: %w", err)
		}
	}()
	if p.d, err = cuda.Open(0); err != nil {
		return nil, err
	}
	if err = p.d.SetTF32(!opt.NoTF32); err != nil {
		return nil, err
	}
	if p.m, err = gpu.NewModelOpts(p.d, cfg, m.Source(), gpu.Options{Batch: batch, Seq: seq, WeightsBF16: opt.BF16}); err != nil {
		return nil, err
	}
	newStats := func(n int) *cuda.ImportanceStats {
		if err != nil {
			return nil
		}
		var st *cuda.ImportanceStats
		if st, err = p.d.NewImportanceStats(n); err == nil {
			p.all = append(p.all, st)
		}
		return st
	}
	for l := 0; l < cfg.NumLayers; l++ {
		p.heads = append(p.heads, newStats(cfg.NumHeads))
		p.neur = append(p.neur, newStats(cfg.IntermediateSize))
		p.norms = append(p.norms, [2]*cuda.ImportanceStats{newStats(cfg.HiddenSize), newStats(cfg.HiddenSize)})
	}
	if err != nil {
		return nil, err
	}
	rows := batch * seq
	if p.hn, err = p.d.Alloc(rows * cfg.NumHeads); err != nil {
		return nil, err
	}
	p.hooks = p.collectorHooks()
	return p, nil
}

func (p *cudaPasses) collectorHooks() *gpu.Hooks {
	cfg, col := p.cfg, p.col
	h := &gpu.Hooks{
		AttnNorm: func(l int, x cuda.Buf, B, T int) error { return p.norms[l][0].AddBatch(x, B, T, p.seqAgg) },
		MLPNorm:  func(l int, x cuda.Buf, B, T int) error { return p.norms[l][1].AddBatch(x, B, T, p.seqAgg) },
		AttnHeads: func(l int, x cuda.Buf, B, T int) error {
			hn := p.hn.Slice(0, B*T*cfg.NumHeads)
			if err := p.d.HeadNorms(hn, x, B*T, cfg.NumHeads, cfg.HeadDim); err != nil {
				return err
			}
			return p.heads[l].AddBatch(hn, B, T, p.seqAgg)
		},
	}
	neurons := func(l int, x cuda.Buf, B, T int) error { return p.neur[l].AddBatch(x, B, T, p.seqAgg) }
	if col.mlpPre {
		h.MLPPre = neurons
	} else {
		h.MLPPost = neurons
	}
	if col.bi {
		H := cfg.HiddenSize
		h.LayerInput = func(l int, x cuda.Buf, B, T int) error {
			p.in = x
			return nil
		}
		h.LayerOutput = func(l int, x cuda.Buf, B, T int) error {
			rows := B * T
			s, err := p.d.RowCosineSum(p.in.Slice(0, rows*H), x.Slice(0, rows*H), rows, H)
			if err != nil {
				return err
			}
			col.cosSum[l] += s
			col.cosRows[l] += int64(rows)
			return nil
		}
	}
	return h
}

func toInt32(batch [][]int) [][]int32 {
	out := make([][]int32, len(batch))
	for i, s := range batch {
		out[i] = make([]int32, len(s))
		for j, v := range s {
			out[i][j] = int32(v)
		}
	}
	return out
}

func (p *cudaPasses) collect(batch [][]int) error {
	if err := p.m.SetInputs(toInt32(batch), nil); err != nil {
		return fmt.Errorf("importance on cuda: %w", err)
	}
	if err := p.m.Infer(&gpu.InferOptions{Hooks: p.hooks, NoLogits: true}); err != nil {
		return fmt.Errorf("importance on cuda: %w", err)
	}
	return nil
}

// meanNLL is MeanNLL on the device: the targets are the next tokens, the
// NLL is averaged over each sequence's T−1 predicted tokens, then over
// the sequences.
func (p *cudaPasses) meanNLL(batch [][]int, skip []int) (float64, error) {
	T := len(batch[0])
	if T < 2 {
		return 0, fmt.Errorf("nll: need sequences of at least 2 tokens")
	}
	ids := toInt32(batch)
	tg := make([][]int32, len(ids))
	for b, s := range ids {
		tg[b] = make([]int32, T)
		copy(tg[b], s[1:])
		tg[b][T-1] = -1
	}
	if err := p.m.SetInputs(ids, tg); err != nil {
		return 0, fmt.Errorf("importance on cuda: %w", err)
	}
	if err := p.m.Infer(&gpu.InferOptions{Skip: skip}); err != nil {
		return 0, fmt.Errorf("importance on cuda: %w", err)
	}
	logp, _, err := p.m.TokenLogProbs()
	if err != nil {
		return 0, fmt.Errorf("importance on cuda: %w", err)
	}
	if len(logp) < len(ids)*T {
		return 0, fmt.Errorf("importance on cuda: %d token log-probabilities for %d×%d tokens", len(logp), len(ids), T)
	}
	var sum float64
	for b := range ids {
		var s float64
		for t := 0; t+1 < T; t++ {
			s -= float64(logp[b*T+t])
		}
		sum += s / float64(T-1)
	}
	return sum / float64(len(ids)), nil
}

// fold merges the device's sums into the collector's accumulators (once,
// after the calibration passes), where Scores reduces them over samples.
func (p *cudaPasses) fold() error {
	merge := func(dst *Accumulator, s *cuda.ImportanceStats) error {
		sum, sumSq, err := s.Sums()
		if err != nil {
			return fmt.Errorf("importance on cuda: %w", err)
		}
		dst.Merge(&Accumulator{agg: dst.agg, n: dst.n, samples: s.Samples, sum: sum, sumSq: sumSq})
		return nil
	}
	c := p.col
	for l := range p.heads {
		for _, e := range []struct {
			dst *Accumulator
			src *cuda.ImportanceStats
		}{{c.heads[l], p.heads[l]}, {c.neurons[l], p.neur[l]}, {c.norms[l][0], p.norms[l][0]}, {c.norms[l][1], p.norms[l][1]}} {
			if err := merge(e.dst, e.src); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *cudaPasses) close() {
	if p.d == nil {
		return
	}
	for _, st := range p.all {
		st.Free()
	}
	if !p.hn.IsNil() {
		p.d.Free(p.hn)
	}
	if p.m != nil {
		p.m.Free()
	}
	p.d.Close()
	p.d = nil
}
