package importance

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/internal/atomicfile"
	"github.com/minitron-dev/minitron/model"
)

// PartialFormat names the partial statistics file format.
const PartialFormat = "minitron-importance-partial/1"

// Partial is the statistics of one shard of a scoring run: the sums and
// counts from which the scores are the last reduction, so that the
// partials of disjoint shards (importance --shard I/N, one per Slurm array
// task or MPI rank) merge into the scores of the whole run. Sums are
// float64 and JSON carries them exactly.
type Partial struct {
	Format string `json:"format"`
	// Shard is this part's index among Of. It scored calibration samples
	// [SamplesLo, SamplesHi) of the run's Data.Samples and, with
	// layer-drop losses, loss samples [LossLo, LossHi) of Loss.Samples.
	Shard     int `json:"shard"`
	Of        int `json:"of"`
	SamplesLo int `json:"samples_lo"`
	SamplesHi int `json:"samples_hi"`
	LossLo    int `json:"loss_lo,omitempty"`
	LossHi    int `json:"loss_hi,omitempty"`

	Model       Identity    `json:"model"`
	Shape       Shape       `json:"shape"`
	Aggregation Aggregation `json:"aggregation"`
	MLPPoint    string      `json:"mlp_point"`
	Data        DataInfo    `json:"data"` // of the whole run
	BlockK      []int       `json:"block_k,omitempty"`
	Provenance  *Provenance `json:"provenance,omitempty"`
	LossData    string      `json:"loss_data,omitempty"`

	// Per layer: the heads', neurons' and two norms' accumulators.
	Heads   []Moments    `json:"heads"`
	Neurons []Moments    `json:"neurons"`
	Norms   [][2]Moments `json:"norms"`
	// Block Importance: per layer Σ cos(input, output) over the tokens
	// and the token count.
	CosSum  []float64 `json:"cos_sum,omitempty"`
	CosRows []int64   `json:"cos_rows,omitempty"`
	Loss    *LossSums `json:"loss,omitempty"`
}

// Moments are an Accumulator's state: per channel Σ_s v and Σ_s v² over
// Samples samples.
type Moments struct {
	Samples int       `json:"samples"`
	Sum     []float64 `json:"sum"`
	SumSq   []float64 `json:"sum_sq"`
}

// LossSums are the layer-drop losses before the mean: sums over the
// shard's loss samples of each sample's mean next-token NLL. Samples and
// SeqLen are the whole run's.
type LossSums struct {
	Samples int             `json:"samples"`
	SeqLen  int             `json:"seq_len"`
	Base    float64         `json:"base"`
	Drop    []float64       `json:"drop_one"`
	Blocks  []BlockLossSums `json:"blocks,omitempty"`
}

// BlockLossSums are the loss sums with each block of K layers dropped, by
// first layer.
type BlockLossSums struct {
	K    int       `json:"k"`
	Sums []float64 `json:"sums"`
}

func (a *Accumulator) moments() Moments {
	return Moments{Samples: a.samples, Sum: slices.Clone(a.sum), SumSq: slices.Clone(a.sumSq)}
}

func (a *Accumulator) add(m Moments) error {
	if len(m.Sum) != a.n || len(m.SumSq) != a.n {
		return fmt.Errorf("%d and %d sums for %d channels", len(m.Sum), len(m.SumSq), a.n)
	}
	a.Merge(&Accumulator{n: a.n, samples: m.Samples, sum: m.Sum, sumSq: m.SumSq})
	return nil
}

// partial is the collector's statistics.
func (c *Collector) partial() *Partial {
	p := &Partial{}
	for l := range c.heads {
		p.Heads = append(p.Heads, c.heads[l].moments())
		p.Neurons = append(p.Neurons, c.neurons[l].moments())
		p.Norms = append(p.Norms, [2]Moments{c.norms[l][0].moments(), c.norms[l][1].moments()})
	}
	if c.bi {
		p.CosSum, p.CosRows = slices.Clone(c.cosSum), slices.Clone(c.cosRows)
	}
	return p
}

// config is the part of a model config a Collector reads.
func (s Shape) config() *model.Config {
	return &model.Config{NumLayers: s.Layers, HiddenSize: s.Hidden, NumHeads: s.Heads, NumKVHeads: s.KVHeads, IntermediateSize: s.FFN}
}

// collectorOf rebuilds a Collector holding the sums of ps (added in order).
func collectorOf(ps []*Partial) (*Collector, error) {
	p0 := ps[0]
	col, err := NewCollector(p0.Shape.config(), p0.Aggregation, p0.MLPPoint, p0.CosSum != nil)
	if err != nil {
		return nil, err
	}
	L := p0.Shape.Layers
	for _, p := range ps {
		if len(p.Heads) != L || len(p.Neurons) != L || len(p.Norms) != L || (col.bi && (len(p.CosSum) != L || len(p.CosRows) != L)) {
			return nil, fmt.Errorf("shard %d: statistics for %d layers, the shape has %d", p.Shard, len(p.Heads), L)
		}
		for l := 0; l < L; l++ {
			for _, x := range []struct {
				a *Accumulator
				m Moments
			}{{col.heads[l], p.Heads[l]}, {col.neurons[l], p.Neurons[l]}, {col.norms[l][0], p.Norms[l][0]}, {col.norms[l][1], p.Norms[l][1]}} {
				if err := x.a.add(x.m); err != nil {
					return nil, fmt.Errorf("shard %d, layer %d: %w", p.Shard, l, err)
				}
			}
			if col.bi {
				col.cosSum[l] += p.CosSum[l]
				col.cosRows[l] += p.CosRows[l]
			}
		}
	}
	return col, nil
}

// scores reduces the statistics of a whole run (one partial, or merged).
func (p *Partial) scores() (*Scores, error) {
	return scoresOf([]*Partial{p})
}

// scoresOf reduces the statistics of ps, the shards of one run.
func scoresOf(ps []*Partial) (*Scores, error) {
	p0 := ps[0]
	col, err := collectorOf(ps)
	if err != nil {
		return nil, err
	}
	s := &Scores{Format: FormatV1, Shape: p0.Shape, Method: "activation", Aggregation: p0.Aggregation, MLPPoint: p0.MLPPoint,
		Model: p0.Model, Data: p0.Data, Provenance: p0.Provenance}
	col.Fill(s)
	if col.bi {
		for _, k := range p0.BlockK {
			s.Depth.Blocks = append(s.Depth.Blocks, BestBlockBI(s.Depth.BI, k))
		}
	}
	if ls := p0.Loss; ls != nil {
		if s.Depth == nil {
			s.Depth = &LayerImportance{}
		}
		d := s.Depth
		d.LossSamples, d.LossSeqLen, d.LossData = ls.Samples, ls.SeqLen, p0.LossData
		n := float64(ls.Samples)
		sum := func(f func(*LossSums) float64) float64 {
			var v float64
			for _, p := range ps {
				v += f(p.Loss)
			}
			return v / n
		}
		d.BaseLoss = sum(func(l *LossSums) float64 { return l.Base })
		d.DropLoss = make([]float64, len(ls.Drop))
		for l := range d.DropLoss {
			d.DropLoss[l] = sum(func(x *LossSums) float64 { return x.Drop[l] })
		}
		for i, b := range ls.Blocks {
			best := BlockDrop{K: b.K, Start: -1, Metric: "loss"}
			for st := range b.Sums {
				v := sum(func(x *LossSums) float64 { return x.Blocks[i].Sums[st] })
				if best.Start < 0 || v < best.Value {
					best.Start, best.Value = st, v
				}
			}
			d.Blocks = append(d.Blocks, best)
		}
	}
	return s, nil
}

// MergePartials combines the partials of every shard of one run (in any
// order) into its scores: the sums and counts are added, then reduced as
// one run's. They must be shards 0..N-1 of N of the same model, data,
// sample counts and settings.
func MergePartials(ps []*Partial) (*Scores, error) {
	if len(ps) == 0 {
		return nil, fmt.Errorf("importance merge: no partial files")
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b *Partial) int { return a.Shard - b.Shard })
	p0 := ps[0]
	if len(ps) != p0.Of {
		return nil, fmt.Errorf("importance merge: %d partials, the run has %d shards", len(ps), p0.Of)
	}
	key := func(p *Partial) string {
		b, _ := json.Marshal([]any{p.Of, p.Model, p.Shape, p.Aggregation, p.MLPPoint, p.Data, p.BlockK, p.LossData, p.Loss != nil, p.CosSum != nil})
		return string(b)
	}
	k0, at, lossAt := key(p0), 0, 0
	for i, p := range ps {
		if key(p) != k0 {
			return nil, fmt.Errorf("importance merge: shard %d of %d is of another run than shard %d of %d (model, data, settings or shard count differ)", p.Shard, p.Of, p0.Shard, p0.Of)
		}
		if p.Shard != i {
			return nil, fmt.Errorf("importance merge: shard %d of %d is missing (or given twice)", i, p0.Of)
		}
		if p.SamplesLo != at || p.SamplesHi < p.SamplesLo {
			return nil, fmt.Errorf("importance merge: shard %d scored samples [%d,%d), want them from %d", p.Shard, p.SamplesLo, p.SamplesHi, at)
		}
		at = p.SamplesHi
		if p.Loss != nil {
			if p.LossLo != lossAt || p.Loss.Samples != p0.Loss.Samples || p.Loss.SeqLen != p0.Loss.SeqLen ||
				len(p.Loss.Drop) != len(p0.Loss.Drop) || len(p.Loss.Blocks) != len(p0.Loss.Blocks) {
				return nil, fmt.Errorf("importance merge: shard %d's layer-drop losses do not continue the others'", p.Shard)
			}
			for j, b := range p.Loss.Blocks {
				if b.K != p0.Loss.Blocks[j].K || len(b.Sums) != len(p0.Loss.Blocks[j].Sums) {
					return nil, fmt.Errorf("importance merge: shard %d's block losses differ in shape", p.Shard)
				}
			}
			lossAt = p.LossHi
		}
	}
	if at != p0.Data.Samples {
		return nil, fmt.Errorf("importance merge: the shards scored %d of the %d samples", at, p0.Data.Samples)
	}
	if p0.Loss != nil && lossAt != p0.Loss.Samples {
		return nil, fmt.Errorf("importance merge: the shards measured losses on %d of the %d samples", lossAt, p0.Loss.Samples)
	}
	s, err := scoresOf(ps)
	if err != nil {
		return nil, fmt.Errorf("importance merge: %w", err)
	}
	return s, s.Validate()
}

// Save writes the partial as JSON atomically.
func (p *Partial) Save(path string) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), nil)
}

// ParsePartial decodes a partial statistics file.
func ParsePartial(b []byte) (*Partial, error) {
	var p Partial
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("not a partial statistics file: %w", err)
	}
	if p.Format != PartialFormat {
		return nil, fmt.Errorf("format %q, want %q (a file of importance --shard)", p.Format, PartialFormat)
	}
	if p.Of < 1 || p.Shard < 0 || p.Shard >= p.Of {
		return nil, fmt.Errorf("shard %d of %d", p.Shard, p.Of)
	}
	if err := p.Aggregation.Validate(); err != nil {
		return nil, err
	}
	if p.Shape.Layers < 1 || p.Shape.Heads < 1 || p.Shape.KVHeads < 1 || p.Shape.Heads%p.Shape.KVHeads != 0 || p.Shape.Hidden < 1 || p.Shape.FFN < 1 {
		return nil, fmt.Errorf("shape %+v is not a model's", p.Shape)
	}
	if p.MLPPoint != MLPPre && p.MLPPoint != MLPPost {
		return nil, fmt.Errorf("mlp_point %q", p.MLPPoint)
	}
	L := p.Shape.Layers
	if len(p.Heads) != L || len(p.Neurons) != L || len(p.Norms) != L {
		return nil, fmt.Errorf("statistics for %d layers, the shape has %d", len(p.Heads), L)
	}
	for l := 0; l < L; l++ {
		for _, c := range []struct {
			m Moments
			n int
		}{{p.Heads[l], p.Shape.Heads}, {p.Neurons[l], p.Shape.FFN}, {p.Norms[l][0], p.Shape.Hidden}, {p.Norms[l][1], p.Shape.Hidden}} {
			if len(c.m.Sum) != c.n || len(c.m.SumSq) != c.n || c.m.Samples < 0 {
				return nil, fmt.Errorf("layer %d: %d sums for %d channels", l, len(c.m.Sum), c.n)
			}
		}
	}
	if p.CosSum != nil && (len(p.CosSum) != L || len(p.CosRows) != L) {
		return nil, fmt.Errorf("block importance sums for %d layers, the shape has %d", len(p.CosSum), L)
	}
	for _, k := range p.BlockK {
		if k <= 0 || k >= L {
			return nil, fmt.Errorf("block size %d outside [1,%d)", k, L)
		}
	}
	if ls := p.Loss; ls != nil {
		if len(ls.Drop) != L || len(ls.Blocks) != len(p.BlockK) || ls.Samples < 1 {
			return nil, fmt.Errorf("layer-drop losses for %d layers and %d block sizes, want %d and %d", len(ls.Drop), len(ls.Blocks), L, len(p.BlockK))
		}
		for i, b := range ls.Blocks {
			if b.K != p.BlockK[i] || len(b.Sums) != L-b.K+1 {
				return nil, fmt.Errorf("block losses of size %d: %d sums, want %d", b.K, len(b.Sums), L-p.BlockK[i]+1)
			}
		}
	}
	return &p, nil
}

// LoadPartial reads a partial statistics file.
func LoadPartial(path string) (*Partial, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParsePartial(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ComputeShard is ComputePartial of shard (0-based) of of over a run's
// samples (all of them: the shard scores its contiguous part, and its part
// of the layer-drop losses' samples), with the shard's place recorded, so
// that MergePartials of every shard's Partial gives Compute's scores of all
// the samples (to the order of float64 additions).
func ComputeShard(ctx context.Context, m *model.Model, samples [][]int, opt Options, shard, of int) (*Partial, error) {
	if of < 1 || shard < 0 || shard >= of {
		return nil, fmt.Errorf("importance: shard %d of %d: want 0 ≤ shard < shards", shard, of)
	}
	if len(samples) < of {
		return nil, fmt.Errorf("importance: %d shards of %d samples: each shard needs at least one", of, len(samples))
	}
	lo, hi := comm.Range(len(samples), of, shard)
	var llo, lhi, lossN int
	if opt.Loss {
		all := samples
		if opt.LossData != nil {
			all = opt.LossData
		}
		lossN = len(all)
		if opt.LossSamples > 0 {
			lossN = min(lossN, opt.LossSamples)
		}
		if lossN < of {
			return nil, fmt.Errorf("importance: %d shards of %d layer-drop loss samples: each shard needs at least one (raise LossSamples or use fewer shards)", of, lossN)
		}
		llo, lhi = comm.Range(lossN, of, shard)
		opt.LossData, opt.LossSamples = all[llo:lhi], 0
	}
	p, err := ComputePartial(ctx, m, samples[lo:hi], opt)
	if err != nil {
		return nil, err
	}
	p.Shard, p.Of, p.SamplesLo, p.SamplesHi = shard, of, lo, hi
	p.Data.Samples = len(samples)
	p.Data.Tokens = int64(len(samples)) * int64(p.Data.SeqLen)
	if p.Loss != nil {
		p.LossLo, p.LossHi, p.Loss.Samples = llo, lhi, lossN
	}
	return p, nil
}

// runShard scores c's shard of samples (and of the layer-drop losses'
// samples) and writes its Partial to Out; in a job of several ranks the
// partials go to rank 0, which merges them and writes the scores instead.
func (c *Config) runShard(ctx context.Context, m *model.Model, id Identity, samples [][]int, opt Options, split, lossSplit string, start time.Time) (*Result, error) {
	p, err := ComputeShard(ctx, m, samples, opt, c.Shard, c.Shards)
	if err != nil {
		return nil, err
	}
	p.Model = id
	p.Data.Prefix, p.Data.Split, p.Data.Seed = c.Data, filepath.Base(split), int64(c.Seed)
	if p.Loss != nil {
		p.LossData = filepath.Base(lossSplit)
	}
	p.Provenance = c.provenance()
	res := &Result{Partial: p, Split: split, LossSplit: lossSplit}
	if c.Comm == nil || c.Comm.Size() == 1 {
		if err := p.Save(c.Out); err != nil {
			return nil, err
		}
		res.Seconds = time.Since(start).Seconds()
		return res, nil
	}
	ps, err := gatherPartials(c.Comm, p)
	if err != nil {
		return nil, err
	}
	if c.Comm.Rank() == 0 {
		if res.Scores, err = MergePartials(ps); err == nil {
			err = res.Scores.Save(c.Out)
		}
	}
	if err := comm.Agree(c.Comm, err); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// gatherPartials brings every rank's partial to rank 0 (nil elsewhere).
func gatherPartials(c comm.Communicator, p *Partial) ([]*Partial, error) {
	mine, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var out []*Partial
	for r := 0; r < c.Size(); r++ {
		var n [8]byte
		if r == c.Rank() {
			binary.LittleEndian.PutUint64(n[:], uint64(len(mine)))
		}
		if err := c.BroadcastBytes(n[:], r); err != nil {
			return nil, err
		}
		b := make([]byte, binary.LittleEndian.Uint64(n[:]))
		if r == c.Rank() {
			copy(b, mine)
		}
		if err := c.BroadcastBytes(b, r); err != nil {
			return nil, err
		}
		if c.Rank() == 0 {
			q, err := ParsePartial(b)
			if err != nil {
				return nil, fmt.Errorf("rank %d's statistics: %w", r, err)
			}
			out = append(out, q)
		}
	}
	return out, nil
}
