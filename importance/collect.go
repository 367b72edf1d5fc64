package importance

import (
	"context"
	"fmt"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// MLP hook points.
const (
	MLPPre  = "pre"  // X·W1ᵀ before the activation (the paper; gate_proj output for SwiGLU)
	MLPPost = "post" // the input of down_proj (NVIDIA's code; act(gate)·up for SwiGLU)
)

// Collector turns forward-pass hooks into width statistics and Block
// Importance. One Collector serves one model; feed it batches by passing
// Hooks() to Forward.
type Collector struct {
	cfg     *model.Config
	mlpPre  bool
	heads   []*Accumulator    // per layer, NumHeads channels
	neurons []*Accumulator    // per layer, FFN channels
	norms   [][2]*Accumulator // per layer: input_layernorm, post_attention_layernorm outputs
	hn      []float32         // head-norm scratch

	bi      bool
	in      []float32 // copy of the current layer's input
	cosSum  []float64 // per layer Σ cos(in, out)
	cosRows []int64
}

// NewCollector prepares accumulators for cfg. mlpPoint is MLPPre or MLPPost;
// bi enables Block Importance.
func NewCollector(cfg *model.Config, agg Aggregation, mlpPoint string, bi bool) (*Collector, error) {
	if err := agg.Validate(); err != nil {
		return nil, err
	}
	if mlpPoint != MLPPre && mlpPoint != MLPPost {
		return nil, fmt.Errorf("unknown MLP point %q (want pre or post)", mlpPoint)
	}
	c := &Collector{cfg: cfg, mlpPre: mlpPoint == MLPPre, bi: bi}
	for l := 0; l < cfg.NumLayers; l++ {
		c.heads = append(c.heads, NewAccumulator(cfg.NumHeads, agg))
		c.neurons = append(c.neurons, NewAccumulator(cfg.IntermediateSize, agg))
		c.norms = append(c.norms, [2]*Accumulator{NewAccumulator(cfg.HiddenSize, agg), NewAccumulator(cfg.HiddenSize, agg)})
	}
	c.cosSum = make([]float64, cfg.NumLayers)
	c.cosRows = make([]int64, cfg.NumLayers)
	return c, nil
}

// Hooks returns the forward hooks that feed this collector.
func (c *Collector) Hooks() *model.Hooks {
	h := &model.Hooks{
		AttnNorm: func(l, B, T int, x []float32) { c.norms[l][0].AddBatch(x, B, T) },
		MLPNorm:  func(l, B, T int, x []float32) { c.norms[l][1].AddBatch(x, B, T) },
		AttnHeads: func(l, B, T int, x []float32) {
			c.hn = HeadNorms(c.hn, x, B*T, c.cfg.NumHeads, c.cfg.HeadDim)
			c.heads[l].AddBatch(c.hn, B, T)
		},
	}
	neurons := func(l, B, T int, x []float32) { c.neurons[l].AddBatch(x, B, T) }
	if c.mlpPre {
		h.MLPPre = neurons
	} else {
		h.MLPPost = neurons
	}
	if c.bi {
		h.LayerInput = func(l, B, T int, x []float32) { c.in = append(c.in[:0], x...) }
		h.LayerOutput = func(l, B, T int, x []float32) {
			H := c.cfg.HiddenSize
			for r := 0; r < B*T; r++ {
				c.cosSum[l] += kernels.Cosine(c.in[r*H:(r+1)*H], x[r*H:(r+1)*H])
			}
			c.cosRows[l] += int64(B * T)
		}
	}
	return h
}

// Fill writes the width scores (and BI, when enabled) into s.
func (c *Collector) Fill(s *Scores) {
	H := c.cfg.HiddenSize
	s.Channels = make([]float64, H)
	s.Layers = make([]LayerScores, c.cfg.NumLayers)
	for l := range s.Layers {
		for _, n := range c.norms[l] {
			for i, v := range n.Scores() {
				s.Channels[i] += v
			}
		}
		hs := c.heads[l].Scores()
		s.Layers[l] = LayerScores{Heads: hs, Groups: GroupScores(hs, c.cfg.NumKVHeads), Neurons: c.neurons[l].Scores()}
	}
	if c.bi {
		if s.Depth == nil {
			s.Depth = &LayerImportance{}
		}
		s.Depth.BI = make([]float64, c.cfg.NumLayers)
		for l := range s.Depth.BI {
			if c.cosRows[l] > 0 {
				s.Depth.BI[l] = 1 - c.cosSum[l]/float64(c.cosRows[l])
			}
		}
	}
}

// Options control Compute.
type Options struct {
	Aggregation Aggregation
	MLPPoint    string // MLPPre or MLPPost; default MLPPost
	Batch       int    // sequences per forward pass; default 1
	BI          bool   // compute Block Importance
	Loss        bool   // compute the loss with each layer (and each block of BlockK) dropped
	// LossSamples caps how many samples the drop-one losses use (they
	// cost one forward pass per layer); 0 = all.
	LossSamples int
	// LossData, when set, are the samples the layer-drop losses are
	// measured on (held-out data); otherwise the calibration samples.
	LossData [][]int
	// BlockK lists block sizes k for which the best contiguous block to
	// drop is found (by summed BI, and by loss when Loss is set).
	BlockK []int
	// Progress, when set, is called after each forward pass with the
	// passes done and the total.
	Progress func(done, total int64)
	// Device runs the forward passes on the CPU (the zero value) or on
	// device.CUDA (GPU 0, a binary built with -tags minitron_cuda; the
	// weights are uploaded once from the model's source). Only the
	// reductions' inputs differ: the scores are reduced on the host the
	// same way for both.
	Device device.Kind
	// NoTF32 keeps the device's f32 matrix products in full f32 (cuBLAS
	// otherwise rounds their inputs to TF32); ignored on the CPU.
	NoTF32 bool
	// BF16 keeps the weight matrices (linear layers, embedding) on the
	// device in bf16 only (gpu.Options.WeightsBF16: bf16 products,
	// f32 accumulation); Device cuda only.
	BF16 bool
}

// checkDevice normalises Options.Device through the one device parser and
// refuses what this binary or the CPU cannot do, before any pass runs.
func (o *Options) checkDevice() error {
	k, err := device.ParseBuilt(string(o.Device))
	if err != nil {
		return fmt.Errorf("importance: %w", err)
	}
	o.Device = k
	if o.BF16 && !k.IsCUDA() {
		return fmt.Errorf("importance: BF16 weights need Device cuda (the CPU forward pass runs in f32)")
	}
	return nil
}

// passes is what Compute needs from a device: a forward pass that feeds
// the collector, and the mean NLL of a batch with layers skipped.
type passes interface {
	collect(batch [][]int) error
	meanNLL(batch [][]int, skip []int) (float64, error)
	// fold moves statistics kept elsewhere (on a GPU) into the collector.
	fold() error
	close()
}

// cpuPasses runs the model's own forward pass, hooks feeding the collector.
type cpuPasses struct {
	m     *model.Model
	hooks *model.Hooks
}

func (p cpuPasses) collect(b [][]int) error {
	_, err := p.m.Forward(b, &model.ForwardOptions{Output: model.Hidden, Hooks: p.hooks})
	return err
}

func (p cpuPasses) meanNLL(b [][]int, skip []int) (float64, error) { return MeanNLL(p.m, b, skip) }
func (cpuPasses) fold() error                                      { return nil }
func (cpuPasses) close()                                           {}

// Compute runs the model over the calibration samples (all of one length)
// and returns the scores (Model identity and Data are left to the caller).
// Memory is bounded by one batch's activations and O(layers·width)
// accumulators.
func Compute(ctx context.Context, m *model.Model, samples [][]int, opt Options) (*Scores, error) {
	p, err := ComputePartial(ctx, m, samples, opt)
	if err != nil {
		return nil, err
	}
	return p.scores()
}

// ComputePartial is Compute's statistics before the last reduction: sums
// and counts that add over disjoint parts of the samples (MergePartials).
func ComputePartial(ctx context.Context, m *model.Model, samples [][]int, opt Options) (*Partial, error) {
	cfg := m.Cfg
	if len(samples) == 0 {
		return nil, fmt.Errorf("importance: no calibration samples")
	}
	if opt.MLPPoint == "" {
		opt.MLPPoint = MLPPost
	}
	if opt.Batch <= 0 {
		opt.Batch = 1
	}
	if err := opt.checkDevice(); err != nil {
		return nil, err
	}
	col, err := NewCollector(cfg, opt.Aggregation, opt.MLPPoint, opt.BI)
	if err != nil {
		return nil, err
	}
	for _, k := range opt.BlockK {
		if k <= 0 || k >= cfg.NumLayers {
			return nil, fmt.Errorf("importance: block size %d must be in [1,%d)", k, cfg.NumLayers)
		}
	}
	lossSamples := samples
	if opt.LossData != nil {
		lossSamples = opt.LossData
	}
	lossN := len(lossSamples)
	if opt.LossSamples > 0 {
		lossN = min(lossN, opt.LossSamples)
	}
	if opt.Loss && lossN == 0 {
		return nil, fmt.Errorf("importance: no samples for the layer-drop losses")
	}
	lossSamples = lossSamples[:lossN]
	nb := (len(samples) + opt.Batch - 1) / opt.Batch
	lb := (lossN + opt.Batch - 1) / opt.Batch
	total := nb
	var blocks int
	if opt.Loss {
		for _, k := range opt.BlockK {
			blocks += cfg.NumLayers - k + 1
		}
		total += lb * (1 + cfg.NumLayers + blocks)
	}
	var done int64
	step := func() {
		done++
		if opt.Progress != nil {
			opt.Progress(done, int64(total))
		}
	}
	var pass passes = cpuPasses{m: m, hooks: col.Hooks()}
	if opt.Device.IsCUDA() {
		// One device model serves every pass: room for the longest batch.
		batch, seq := min(opt.Batch, len(samples)), len(samples[0])
		if opt.Loss {
			batch, seq = max(batch, min(opt.Batch, lossN)), max(seq, len(lossSamples[0]))
		}
		if pass, err = newCUDAPasses(m, col, opt, batch, seq); err != nil {
			return nil, err
		}
	}
	defer pass.close()
	for i := 0; i < len(samples); i += opt.Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := samples[i:min(i+opt.Batch, len(samples))]
		if err := pass.collect(b); err != nil {
			return nil, err
		}
		step()
	}
	if err := pass.fold(); err != nil {
		return nil, err
	}
	p := col.partial()
	p.Format, p.Shard, p.Of = PartialFormat, 0, 1
	p.Shape, p.Aggregation, p.MLPPoint, p.BlockK = ShapeOf(cfg), opt.Aggregation, opt.MLPPoint, opt.BlockK
	p.Data.Samples = len(samples)
	p.Data.SeqLen = len(samples[0])
	p.Data.Tokens = int64(len(samples)) * int64(len(samples[0]))
	if opt.Loss {
		ls := &LossSums{Samples: lossN, SeqLen: len(lossSamples[0])}
		p.Loss = ls
		// loss is the sum over the samples of each one's mean NLL
		loss := func(skip []int) (float64, error) {
			var sum float64
			for i := 0; i < lossN; i += opt.Batch {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				b := lossSamples[i:min(i+opt.Batch, lossN)]
				l, err := pass.meanNLL(b, skip)
				if err != nil {
					return 0, err
				}
				sum += l * float64(len(b))
				step()
			}
			return sum, nil
		}
		if ls.Base, err = loss(nil); err != nil {
			return nil, err
		}
		ls.Drop = make([]float64, cfg.NumLayers)
		for l := range ls.Drop {
			if ls.Drop[l], err = loss([]int{l}); err != nil {
				return nil, err
			}
		}
		for _, k := range opt.BlockK {
			bs := BlockLossSums{K: k}
			for st := 0; st+k <= cfg.NumLayers; st++ {
				skip := make([]int, k)
				for j := range skip {
					skip[j] = st + j
				}
				v, err := loss(skip)
				if err != nil {
					return nil, err
				}
				bs.Sums = append(bs.Sums, v)
			}
			ls.Blocks = append(ls.Blocks, bs)
		}
	}
	return p, nil
}

// BestBlockBI is the contiguous block of k layers with the smallest summed
// Block Importance.
func BestBlockBI(bi []float64, k int) BlockDrop {
	best := BlockDrop{K: k, Start: -1, Metric: "bi"}
	for s := 0; s+k <= len(bi); s++ {
		var sum float64
		for _, v := range bi[s : s+k] {
			sum += v
		}
		if best.Start < 0 || sum < best.Value {
			best.Start, best.Value = s, sum
		}
	}
	return best
}

// MeanNLL is the mean next-token NLL over a batch of equal-length
// sequences with the given layers skipped. It uses model.TokenNLL, which
// never holds the full [B·T, V] logits (Nemotron's vocabulary is 256k).
func MeanNLL(m *model.Model, batch [][]int, skip []int) (float64, error) {
	nll, err := m.TokenNLL(batch, &model.ForwardOptions{SkipLayers: skip})
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, seq := range nll {
		var s float64
		for _, v := range seq {
			s += v
		}
		sum += s / float64(len(seq))
	}
	return sum / float64(len(batch)), nil
}
