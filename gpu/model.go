//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"slices"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// param is one tensor's window of the parameter arena (and of the
// gradient and moment arenas, which share its layout).
type param struct {
	name   string
	shape  []int
	off, n int // window of W; off is -1 for a tensor stored only in bf16
	boff   int // window of WB (the bf16 shadow or store); -1 when none
	aoff   int // offset in the arena of every parameter (the gradient's and moments' layout)
}

// Model is a decoder on the device with the activations of one micro-batch
// of Batch sequences of Seq tokens. Forward keeps what the backward pass
// needs (Trainer); a teacher uses Forward alone. Infer (infer.go) runs a
// smaller active batch (SetInputs) with hooks and skipped layers.
//
// A model built with train = false holds one set of activation buffers
// shared by all layers (the residual stream alternates between two), not
// one per layer: a deep teacher at a long sequence needs L times less.
type Model struct {
	d          *cuda.Device
	Cfg        *model.Config
	arch       *model.Arch
	Batch, Seq int
	act        kernels.Activation
	rms        bool // RMSNorm (llama/mistral) rather than LayerNorm1P
	normBias   bool
	params     []param
	byName     map[string]int
	W          cuda.Buf // every parameter, contiguous (those not stored only in bf16)
	arenaN     int      // the parameters in all (the arena's length)

	// activations, per layer l (train only): xs[l] is the residual stream
	// entering layer l (xs[L] leaves the last one), xmid[l] after the
	// attention residual.
	xs, xmid, h1, h2, qkv, att, u, a []cuda.Buf
	mean1, rstd1, mean2, rstd2       []cuda.Buf
	probs                            []cuda.Buf // [B, nH, T, T] per layer (training only)
	hf, meanf, rstdf, logits         cuda.Buf
	ids, targets, pos, cos, sin      cuda.Buf
	hostIDs, hostTargets             []int32
	owned                            []cuda.Buf
	train                            bool
	qk                               *qkNorm // qwen3's q/k norm (nil without)
	// logitChunk (Options.LogitChunk) is the rows of the logits buffer
	// when below Batch·Seq: the forward pass stops at the final norm and
	// LogitsRows computes the logits a chunk of rows at a time.
	logitChunk int
	// recompute (Options.Recompute): xs alone is per layer; the other
	// activations are one layer's set, which the backward pass refills by
	// running the layer again from xs[l].
	recompute bool
	// packed (bf16 training without recompute, see storeLayer): the f32
	// activations are one layer's working set, as under recompute; after
	// each layer's forward what its backward reads is packed into that
	// layer's bf16 stores (the products' inputs h1b…ab, and qkvb, ub,
	// xmidb, probsb), which the backward pass widens back (loadLayer).
	// The residual stream xs and the norms' statistics stay f32 per layer.
	packed                  bool
	qkvb, ub, xmidb, probsb []cuda.BF16
	f32Acts                 bool // Options.f32Acts: bf16 training keeps f32 activations per layer (tests)

	// the buffers Infer uses, shared by all layers: the residual stream
	// alternates between ix[0] and ix[1]. Allocated for train = false,
	// views of layer 0's (and xs[1]'s) buffers for train = true.
	ix                 [2]cuda.Buf
	ih, iqkv, iatt, iu cuda.Buf
	ihb, iattb, iab    cuda.BF16
	activeB, activeT   int // the shape SetBatch/SetInputs set
	posT               int // the sequence length the pos buffer holds
	hostPos            []int32
	logp, argmax       cuda.Buf // TokenLogProbs' outputs, on first use
	cache              *KVCache // the cache of the InferCached call in progress
	// AttnTC runs attention through cuBLAS (Device.AttentionTC, tensor
	// cores; the default) instead of the reference kernel.
	AttnTC bool

	// bf16 GEMMs (EnableBF16): a bf16 shadow of the weights and of every
	// linear layer's input, for cublasGemmEx with f32 accumulation.
	// weightsBF16 (Options.WeightsBF16): the weight matrices live only in
	// WB (the bf16 store), with no f32 copy in W.
	bf16, weightsBF16  bool
	WB                 cuda.BF16
	h1b, attb, h2b, ab []cuda.BF16
	hfb                cuda.BF16
	ownedB             []cuda.BF16
}

// Options are a Model's construction settings (NewModelOpts).
type Options struct {
	// Batch and Seq are the largest micro-batch: Batch sequences of Seq
	// tokens (Infer takes smaller ones).
	Batch, Seq int
	// Train keeps every layer's activations and the attention
	// probabilities for a backward pass.
	Train bool
	// Recompute (with Train) keeps only each layer's input: the backward
	// pass recomputes the layer's activations (Engine), giving the same
	// gradients bit for bit for about one more forward pass of compute.
	// Its attention runs through cuBLAS (whatever AttnTC says) one
	// sequence and one KV group at a time (attnGroups), the backward pass
	// recomputing each group's scores once more.
	Recompute bool
	// LogitChunk, when above 0 and below Batch·Seq, is the rows of
	// logits that exist at once: Forward stops after the final norm and
	// LogitsRows computes [chunk, vocab] of them at a time (the training
	// engine's chunked losses), so the full [Batch·Seq, vocab] logits never
	// exist.
	LogitChunk int
	// WeightsBF16 stores the weight matrices (q/k/v/o, the MLP, lm_head
	// and the embedding table) only as bf16 on the device, for an
	// inference model, or a training model whose engine keeps the f32
	// master weights sharded over the ranks (ZeRO with bf16): half their
	// f32 bytes, and the bf16
	// products of EnableBF16 (cublasGemmEx, f32 accumulation) without
	// EnableBF16's f32 masters. The embedding lookup gathers bf16 rows and
	// widens them to the f32 residual stream (so the stream starts from
	// bf16-rounded embeddings; exact for a bf16 checkpoint). Norms and
	// biases stay f32. A tied head and the lookup share the one bf16 table.
	WeightsBF16 bool
	// BF16 is EnableBF16 at construction: bf16 products over f32 master
	// weights. A training model without Recompute then allocates its
	// activations in their bf16 layout (storeLayer) from the start,
	// rather than first per layer in f32.
	BF16 bool
	// f32Acts keeps a bf16 training model's activations per layer in f32
	// (the layout before bf16 stores: what recomputation reproduces bit
	// for bit); set by tests through export_test.go.
	f32Acts bool
}

// NewModel loads the tensors of cfg from src onto the device in f32. train
// keeps the attention probabilities for a backward pass.
func NewModel(d *cuda.Device, cfg *model.Config, src model.TensorSource, batch, seq int, train bool) (*Model, error) {
	return NewModelOpts(d, cfg, src, Options{Batch: batch, Seq: seq, Train: train})
}

// bf16Chunk is how many values of a weight go up per copy when rounding
// to bf16 on the device: the f32 staging buffer is this size (8 MiB), not
// the model's.
const bf16Chunk = 1 << 21

// bf16Align keeps each tensor of a bf16 store at a 256-byte boundary, the
// alignment cuBLAS' tensor-core kernels want for their operands.
const bf16Align = 128

// alignBF16 is n bf16 values rounded up to a whole bf16Align: the room a
// tensor takes in a bf16 store, so that the next one starts aligned.
func alignBF16(n int) int { return (n + bf16Align - 1) / bf16Align * bf16Align }

const embedName = model.EmbedTensor

// storedBF16 reports a tensor kept only in bf16 under Options.WeightsBF16:
// every matrix; the embedding table only for an even hidden size (its
// lookup moves bf16 pairs as 32-bit words, see embed).
func storedBF16(ti model.TensorInfo, hidden int) bool {
	return len(ti.Shape) == 2 && (ti.Name != embedName || hidden%2 == 0)
}

// NewModelOpts loads the tensors of cfg from src onto the device with o's
// settings. Under o.WeightsBF16 each weight matrix goes up f32 in chunks
// through one small staging buffer and is rounded to bf16 there (the
// rounding of ToBF16, as EnableBF16's shadow): no f32 copy of it is ever
// whole on the device.
func NewModelOpts(d *cuda.Device, cfg *model.Config, src model.TensorSource, o Options) (*Model, error) {
	batch, seq, train := o.Batch, o.Seq, o.Train
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("gpu: micro-batch %d and sequence length %d must be positive", batch, seq)
	}
	if o.LogitChunk < 0 {
		return nil, fmt.Errorf("gpu: logit chunk %d must be ≥ 0", o.LogitChunk)
	}
	if o.LogitChunk >= batch*seq {
		o.LogitChunk = 0 // one chunk: the whole micro-batch
	}
	if o.Recompute && !train {
		return nil, fmt.Errorf("gpu: Recompute is for training models (Train)")
	}
	arch, err := model.NewArch(cfg, src)
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	m := &Model{d: d, Cfg: cfg, arch: arch, Batch: batch, Seq: seq, act: arch.Act, rms: arch.RMSNorm, normBias: arch.NormBias,
		byName: map[string]int{}, train: train, recompute: o.Recompute, logitChunk: o.LogitChunk, AttnTC: true, weightsBF16: o.WeightsBF16,
		f32Acts: o.f32Acts}
	m.packed = train && !o.Recompute && !o.f32Acts && (o.WeightsBF16 || o.BF16)
	total, totalB := 0, 0
	for _, ti := range arch.Tensors {
		n := ti.NumElements()
		p := param{name: ti.Name, shape: ti.Shape, off: -1, boff: -1, n: n, aoff: m.arenaN}
		m.arenaN += n
		bf := o.WeightsBF16 && storedBF16(ti, cfg.HiddenSize)
		// an f32 embedding (odd hidden size) that is also the head needs a
		// bf16 copy for the logits' product
		tiedHead := o.WeightsBF16 && cfg.TieWordEmbeddings && ti.Name == embedName
		if !bf {
			p.off, total = total, total+n
		}
		if bf || tiedHead {
			p.boff = totalB
			totalB += alignBF16(n)
		}
		m.byName[ti.Name] = len(m.params)
		m.params = append(m.params, p)
	}
	ok := false
	defer func() {
		if !ok {
			m.Free()
		}
	}()
	if !o.WeightsBF16 {
		if m.W, err = m.alloc(total); err != nil {
			return nil, err
		}
	} else {
		// One allocation for the f32 part and the bf16 store behind it
		// (256-byte aligned): the pool rounds each block above 64 MiB up
		// to a multiple of 64 MiB, once rather than twice.
		f32n := (total + bf16Align/2 - 1) / (bf16Align / 2) * (bf16Align / 2)
		arena, err := m.alloc(f32n + (totalB+1)/2)
		if err != nil {
			return nil, err
		}
		m.W = arena.Slice(0, total)
		m.WB = cuda.BF16{Ptr: arena.Ptr + cuda.DevicePtr(4*f32n), N: totalB}
	}
	if err := m.upload(src); err != nil {
		return nil, err
	}
	if err := m.allocActivations(); err != nil {
		return nil, err
	}
	if o.WeightsBF16 {
		if err := m.allocBF16Acts(); err != nil {
			return nil, err
		}
		m.bf16 = true
	}
	if o.BF16 && !o.WeightsBF16 {
		if err := m.EnableBF16(); err != nil {
			return nil, err
		}
	}
	ok = true
	return m, nil
}

// upload reads every tensor from src into W and/or, rounded, into WB (a
// tied f32 embedding of an odd hidden size goes into both).
func (m *Model) upload(src model.TensorSource) (err error) {
	d := m.d
	var stage cuda.Buf // f32 staging for the bf16 store, freed before the activations are allocated
	big := 0
	for _, p := range m.params {
		if p.boff >= 0 {
			big = max(big, p.n)
		}
	}
	if big > 0 {
		if stage, err = d.Alloc(min(big, bf16Chunk)); err != nil {
			return err
		}
		defer d.Free(stage)
	}
	host := make([]float32, 0)
	for _, p := range m.params {
		got, found := src.Info(p.name)
		if !found {
			return fmt.Errorf("gpu: weights: missing tensor %q", p.name)
		}
		if !slices.Equal(got.Shape, p.shape) {
			return fmt.Errorf("gpu: weights: tensor %q has shape %v, config wants %v", p.name, got.Shape, p.shape)
		}
		if cap(host) < p.n {
			host = make([]float32, p.n)
		}
		host = host[:p.n]
		if err := src.ReadF32(p.name, host); err != nil {
			return fmt.Errorf("gpu: weights: %w", err)
		}
		if p.off >= 0 {
			if err := d.CopyFrom(m.W.Slice(p.off, p.off+p.n), host); err != nil {
				return err
			}
		}
		if p.boff < 0 {
			continue
		}
		if err := m.uploadBF16(m.WB.Slice(p.boff, p.boff+p.n), host, stage); err != nil {
			return fmt.Errorf("gpu: weights: %s to bf16: %w", p.name, err)
		}
	}
	return nil
}

func (m *Model) alloc(n int) (cuda.Buf, error) {
	b, err := m.d.Alloc(n)
	if err != nil {
		return b, err
	}
	m.owned = append(m.owned, b)
	return b, nil
}

// Free returns every buffer to the device's pool.
func (m *Model) Free() {
	for _, b := range m.owned {
		m.d.Free(b)
	}
	for _, b := range m.ownedB {
		m.d.FreeBF16(b)
	}
	m.owned, m.ownedB = nil, nil
}

func (m *Model) allocB(n int) (cuda.BF16, error) {
	b, err := m.d.AllocBF16(n)
	if err != nil {
		return b, err
	}
	m.ownedB = append(m.ownedB, b)
	return b, nil
}

// EnableBF16 switches the linear layers (not attention's scores, the norms
// or the loss) to bf16 inputs with f32 outputs and accumulation
// (mixed precision: the f32 weights stay the master copy, the bf16 shadow
// is refreshed after each update). Call it before the first Forward. A
// model built with Options.WeightsBF16 runs in bf16 already. A training
// model without recomputation moves to the bf16 activation layout
// (storeLayer): the other layers' f32 sets go back to the pool, which
// keeps them cached, so Options.BF16 (never allocating them) is the lower
// peak.
func (m *Model) EnableBF16() error {
	if m.bf16 {
		return nil
	}
	var err error
	if m.WB, err = m.allocB(m.W.N); err != nil {
		return err
	}
	for i := range m.params {
		m.params[i].boff = m.params[i].off // the shadow mirrors the arena
	}
	if m.train && !m.recompute && !m.f32Acts && !m.packed {
		m.packActivations()
	}
	if err = m.allocBF16Acts(); err == nil {
		err = m.RefreshBF16()
	}
	if err != nil {
		return err
	}
	m.bf16 = true
	return nil
}

// allocBF16Acts allocates the bf16 copies of the linear layers' inputs.
func (m *Model) allocBF16Acts() error {
	c := m.Cfg
	rows, H, F := m.Batch*m.Seq, c.HiddenSize, c.IntermediateSize
	var err error
	one := func(dst *cuda.BF16, n int) {
		if err == nil {
			*dst, err = m.allocB(n)
		}
	}
	many := func(dst *[]cuda.BF16, k, n int) {
		*dst = make([]cuda.BF16, k)
		for i := range *dst {
			one(&(*dst)[i], n)
		}
	}
	if m.train {
		per := m.perLayer()
		many(&m.h1b, per, rows*H)
		many(&m.attb, per, rows*c.QDim())
		many(&m.h2b, per, rows*H)
		many(&m.ab, per, rows*F)
		one(&m.hfb, rows*H)
		if m.packed {
			L, uw := c.NumLayers, F
			if c.GatedMLP() {
				uw = 2 * F
			}
			many(&m.xmidb, L, rows*H)
			many(&m.qkvb, L, rows*(c.QDim()+2*c.KVDim()))
			many(&m.ub, L, rows*uw)
			many(&m.probsb, L, m.probs[0].N)
			if m.qk != nil {
				many(&m.qk.preb, L, m.qk.pre[0].N)
			}
		}
		if err == nil {
			m.ihb, m.iattb, m.iab = m.h1b[0], m.attb[0], m.ab[0]
		}
	} else {
		one(&m.ihb, rows*H)
		one(&m.iattb, rows*c.QDim())
		one(&m.iab, rows*F)
		m.hfb = m.ihb
	}
	return err
}

// RefreshBF16 rounds the f32 weights into their bf16 shadow. A model built
// with Options.WeightsBF16 has no f32 matrices to refresh from.
func (m *Model) RefreshBF16() error {
	if m.weightsBF16 {
		return fmt.Errorf("gpu: RefreshBF16 on a model with bf16-only weights (no f32 masters)")
	}
	return m.d.ToBF16(m.WB, m.W)
}

// WeightsBF16 reports whether the weight matrices are stored only
// in bf16 (Options.WeightsBF16).
func (m *Model) WeightsBF16() bool { return m.weightsBF16 }

// WeightBytes is the device memory the weights take as requested (f32
// arena plus bf16 store or shadow; the pool may round each up).
func (m *Model) WeightBytes() int64 { return 4*int64(m.W.N) + 2*int64(m.WB.N) }

// PB is parameter name's window of the bf16 shadow (or store).
func (m *Model) PB(name string) cuda.BF16 {
	p := m.params[m.byName[name]]
	if p.boff < 0 {
		return cuda.BF16{}
	}
	return m.WB.Slice(p.boff, p.boff+p.n)
}

// P is parameter name's window of the f32 arena (a zero Buf when absent,
// or stored only in bf16).
func (m *Model) P(name string) cuda.Buf {
	i, ok := m.byName[name]
	if !ok {
		return cuda.Buf{}
	}
	p := m.params[i]
	if p.off < 0 {
		return cuda.Buf{}
	}
	return m.W.Slice(p.off, p.off+p.n)
}

// NumParams is the number of parameters (the trainable scalars).
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.params {
		n += p.n
	}
	return n
}

func (m *Model) allocActivations() error {
	c := m.Cfg
	rows, H, F, L := m.Batch*m.Seq, c.HiddenSize, c.IntermediateSize, c.NumLayers
	W := c.QDim() + 2*c.KVDim()
	uw := F
	if c.GatedMLP() {
		uw = 2 * F
	}
	var err error
	many := func(dst *[]cuda.Buf, k, n int) {
		if err != nil {
			return
		}
		*dst = make([]cuda.Buf, k)
		for i := range *dst {
			if (*dst)[i], err = m.alloc(n); err != nil {
				return
			}
		}
	}
	one := func(dst *cuda.Buf, n int) {
		if err == nil {
			*dst, err = m.alloc(n)
		}
	}
	if m.train {
		per, sets := m.perLayer(), m.sets()
		many(&m.xs, L+1, rows*H)
		many(&m.xmid, sets, rows*H)
		many(&m.h1, sets, rows*H)
		many(&m.h2, sets, rows*H)
		many(&m.qkv, sets, rows*W)
		many(&m.att, sets, rows*c.QDim())
		many(&m.u, sets, rows*uw)
		many(&m.a, sets, rows*F)
		many(&m.mean1, per, rows)
		many(&m.rstd1, per, rows)
		many(&m.mean2, per, rows)
		many(&m.rstd2, per, rows)
		scores := m.Batch * c.NumHeads * m.Seq * m.Seq
		if m.recompute {
			scores = m.groupScores() // attnGroups, forward and backward
		}
		many(&m.probs, sets, scores)
		one(&m.hf, rows*H)
		one(&m.meanf, rows)
		one(&m.rstdf, rows)
		if err == nil {
			m.ix = [2]cuda.Buf{m.xs[0], m.xs[1]}
			m.ih, m.iqkv, m.iatt, m.iu = m.h1[0], m.qkv[0], m.att[0], m.u[0]
		}
	} else {
		// no backward: one set of buffers serves every layer; the norms
		// keep no statistics, the final norm writes into ih
		one(&m.ix[0], rows*H)
		one(&m.ix[1], rows*H)
		one(&m.ih, rows*H)
		one(&m.iqkv, rows*W)
		one(&m.iatt, rows*c.QDim())
		one(&m.iu, rows*uw)
		// the tensor-core path (attnGroups) needs room for one sequence's
		// scores of one KV group
		many(&m.probs, 1, m.groupScores())
		m.hf = m.ih
	}
	if m.train {
		// an inference model allocates its logits at the first pass that
		// wants them: importance's passes never do ([rows, V] is the largest
		// activation with a 256k vocabulary)
		one(&m.logits, m.logitRows()*c.VocabSize)
	}
	one(&m.ids, rows)
	one(&m.targets, rows)
	one(&m.pos, rows)
	if err != nil {
		return err
	}
	if c.QKNorm() {
		if err := m.allocQKNorm(); err != nil {
			return err
		}
	}
	m.hostIDs, m.hostTargets, m.hostPos = make([]int32, rows), make([]int32, rows), make([]int32, rows)
	if err := m.setShape(m.Batch, m.Seq); err != nil {
		return err
	}
	if c.RotaryDim() > 0 {
		// [Seq, rot/2]: row p is position p, whatever the active length
		cos, sin := m.arch.RopeTables(m.Seq)
		var err error
		if m.cos, err = m.d.Upload(cos); err != nil {
			return err
		}
		m.owned = append(m.owned, m.cos)
		if m.sin, err = m.d.Upload(sin); err != nil {
			return err
		}
		m.owned = append(m.owned, m.sin)
	}
	return nil
}

// setShape makes B sequences of T tokens the active shape, uploading the
// positions 0..T−1 of each row when T changed.
func (m *Model) setShape(B, T int) error {
	m.activeB, m.activeT = B, T
	if T == m.posT {
		return nil
	}
	for i := range m.hostPos {
		m.hostPos[i] = int32(i % T)
	}
	if err := m.d.CopyFromInt32(m.pos, m.hostPos); err != nil {
		return err
	}
	m.posT = T
	return nil
}

// SetBatch uploads a micro-batch: tokens [Batch][Seq+1], inputs the first
// Seq of each row, targets the last Seq (distill's layout).
func (m *Model) SetBatch(tokens [][]int32) error {
	if err := distill.SplitMicroBatch(tokens, m.Batch, m.Seq, m.Cfg.VocabSize, m.hostIDs, m.hostTargets); err != nil {
		return fmt.Errorf("gpu: %w", err)
	}
	return firstErr(m.setShape(m.Batch, m.Seq), m.d.CopyFromInt32(m.ids, m.hostIDs), m.d.CopyFromInt32(m.targets, m.hostTargets))
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// rows is the number of token rows of the active shape.
func (m *Model) rows() int { return m.activeB * m.activeT }

// dims are attention's dimensions at the active shape.
func (m *Model) dims() kernels.AttnDims { return m.arch.AttnDims(m.activeB, m.activeT) }

// norm normalises the active rows of x into out; mean and rstd (kept for a
// backward pass) may be zero Bufs.
func (m *Model) norm(out, mean, rstd, x cuda.Buf, w, b string) error {
	c := m.Cfg
	rows := m.rows()
	if m.rms {
		return m.d.RMSNormStats(out, rstd, x, m.P(w), rows, c.HiddenSize, float32(c.NormEps))
	}
	var bias cuda.Buf
	if m.normBias {
		bias = m.P(b)
	}
	return m.d.LayerNorm1PStats(out, mean, rstd, x, m.P(w), bias, rows, c.HiddenSize, float32(c.NormEps))
}

// linear writes y[:, off:off+out] = x·Wᵀ into a [rows, ldy] buffer; in
// bf16 mode from xb, the bf16 copy of x (see toB).
func (m *Model) linear(y cuda.Buf, off, ldy int, x cuda.Buf, xb cuda.BF16, in int, w string, out int, accumulate bool) error {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	if m.bf16 {
		return m.d.GemmBF16(false, true, m.rows(), out, in, 1, xb, in, m.PB(w), in, beta, y.Off(off), ldy)
	}
	return m.d.Sgemm(false, true, m.rows(), out, in, 1, x, in, m.P(w), in, beta, y.Off(off), ldy)
}

// toB rounds x into its bf16 copy in bf16 mode (a no-op otherwise).
func (m *Model) toB(xb cuda.BF16, x cuda.Buf) error {
	if !m.bf16 {
		return nil
	}
	return m.d.ToBF16(xb, x)
}

// toBRows is toB on the first rows·width values (the active rows).
func (m *Model) toBRows(xb cuda.BF16, x cuda.Buf, width int) error {
	if !m.bf16 {
		return nil
	}
	return m.d.ToBF16(xb, x.Slice(0, m.rows()*width))
}

// bAt is the l-th bf16 buffer, or a zero one outside bf16 mode.
func bAt(bs []cuda.BF16, l int) cuda.BF16 {
	if l < len(bs) {
		return bs[l]
	}
	return cuda.BF16{}
}

// Forward runs the model on the batch set by SetBatch and leaves the
// logits [Batch·Seq, vocab] in Logits(). A model built with train keeps
// every layer's activations for the backward pass; one without runs Infer
// with no options (at the shape SetBatch or SetInputs set).
func (m *Model) Forward() error {
	if !m.train {
		return m.Infer(nil)
	}
	if m.activeB != m.Batch || m.activeT != m.Seq {
		return fmt.Errorf("gpu: Forward of a training model needs the full %d×%d batch of SetBatch, not %d×%d", m.Batch, m.Seq, m.activeB, m.activeT)
	}
	return m.forward(nil, true)
}

// recomputeLayer runs layer l's forward pass again from its kept input
// xs[l] into the shared activation set (recompute), for its backward pass.
// It rewrites xs[l+1] with the same values.
func (m *Model) recomputeLayer(l int) error {
	p := &pass{m: m, keep: true, hk: &Hooks{}}
	_, err := model.Layer(m.arch, model.Backend[cuda.Buf](p), l, m.xs[l])
	return err
}

// layerBufs are the buffers one layer runs in.
type layerBufs struct {
	x, out      cuda.Buf // residual stream in and out
	xmid        cuda.Buf // after the attention residual (out itself when inferring)
	h1, h2      cuda.Buf // norm outputs
	qkv, att, u cuda.Buf
	a           cuda.Buf // MLP activation (inside u when inferring)
	mean1, rstd1, mean2, rstd2,
	probs cuda.Buf
	h1b, attb, h2b, ab cuda.BF16
	// split: u holds the gate product [rows, F] then the up product
	// [rows, F] (each contiguous, for the MLPPre hook) instead of the
	// training layout [rows, gate | up] the backward pass reads.
	split bool
	// kv is the KV cache of InferCached (nil otherwise) and l the layer:
	// RoPE at the cache's positions, keys and values stored into it,
	// attention over it.
	kv *KVCache
	l  int
}

// perLayer is how many layers' norm statistics and bf16 product inputs a
// training model keeps: all, or one under recomputation.
func (m *Model) perLayer() int {
	if m.recompute {
		return 1
	}
	return m.Cfg.NumLayers
}

// at is the index of layer l's statistics and bf16 product inputs (0
// under recomputation, where one set serves every layer).
func (m *Model) at(l int) int {
	if m.recompute {
		return 0
	}
	return l
}

// sets is how many f32 activation sets (stream after attention, norm
// outputs, q|k|v, attention output and probabilities, MLP products and
// activation) a training model keeps: one per layer, or one shared by
// every layer under recomputation or in the bf16 layout (packed).
func (m *Model) sets() int {
	if m.recompute || m.packed {
		return 1
	}
	return m.Cfg.NumLayers
}

// set is the index of layer l's f32 activation set.
func (m *Model) set(l int) int {
	if m.recompute || m.packed {
		return 0
	}
	return l
}

// storeLayer packs what layer l's backward pass reads of the shared f32
// working set into its bf16 stores (packed), after the layer's forward:
// q|k|v after RoPE (and qwen3's pre-norm heads), the MLP's input products,
// the stream after attention (the MLP norm's input) and the attention
// probabilities. The products' inputs (h1b, attb, h2b, ab) are bf16 per
// layer already, and the residual stream xs and the norms' statistics
// stay f32: the forward pass itself runs in f32 throughout, only the
// backward pass reads bf16-rounded activations.
func (m *Model) storeLayer(l int) error {
	d := m.d
	err := firstErr(
		d.ToBF16(m.qkvb[l], m.qkv[0]),
		d.ToBF16(m.ub[l], m.u[0]),
		d.ToBF16(m.xmidb[l], m.xmid[0]),
		d.ToBF16(m.probsb[l], m.probs[0]))
	if err == nil && m.qk != nil {
		err = d.ToBF16(m.qk.preb[l], m.qk.pre[0])
	}
	return err
}

// loadLayer widens layer l's bf16 stores back into the shared f32 working
// set for its backward pass (packed), where recomputation runs the layer
// again: the backward kernels read the same buffers either way.
func (m *Model) loadLayer(l int) error {
	d := m.d
	err := firstErr(
		d.FromBF16(m.qkv[0], m.qkvb[l]),
		d.FromBF16(m.u[0], m.ub[l]),
		d.FromBF16(m.xmid[0], m.xmidb[l]),
		d.FromBF16(m.probs[0], m.probsb[l]))
	if err == nil && m.qk != nil {
		err = d.FromBF16(m.qk.pre[0], m.qk.preb[l])
	}
	return err
}

// packActivations turns a training model's per-layer f32 activation sets
// into the shared one of the bf16 layout (EnableBF16 after NewModelOpts):
// the other layers' sets go back to the pool; allocBF16Acts then adds the
// bf16 stores.
func (m *Model) packActivations() {
	keepFirst := func(bs *[]cuda.Buf) {
		for _, b := range (*bs)[1:] {
			m.release(b)
		}
		*bs = (*bs)[:1]
	}
	for _, bs := range []*[]cuda.Buf{&m.xmid, &m.h1, &m.h2, &m.qkv, &m.att, &m.u, &m.a, &m.probs} {
		keepFirst(bs)
	}
	if m.qk != nil {
		keepFirst(&m.qk.pre)
	}
	m.packed = true
}

// release frees one of the model's own buffers before Free.
func (m *Model) release(b cuda.Buf) { releaseOwned(m.d, &m.owned, b) }

// releaseOwned frees the buffers bs that owned holds (an owner's early
// release, before its Free) and drops them from it; others are skipped.
func releaseOwned(d *cuda.Device, owned *[]cuda.Buf, bs ...cuda.Buf) {
	for _, b := range bs {
		if i := slices.IndexFunc(*owned, func(o cuda.Buf) bool { return o.Ptr == b.Ptr && b.Ptr != 0 }); i >= 0 {
			*owned = slices.Delete(*owned, i, i+1)
			d.Free(b)
		}
	}
}

// bufs returns layer l's buffers: its own when keep (training; under
// recomputation one set shared by every layer, with the stream xs[l] and
// xs[l+1] its own), else the shared ones with the residual stream read
// from ix[cur].
func (m *Model) bufs(l int, keep bool, cur int) layerBufs {
	if keep {
		i, j := m.set(l), m.at(l)
		return layerBufs{x: m.xs[l], out: m.xs[l+1], xmid: m.xmid[i], h1: m.h1[i], h2: m.h2[i], qkv: m.qkv[i], att: m.att[i],
			u: m.u[i], a: m.a[i], mean1: m.mean1[j], rstd1: m.rstd1[j], mean2: m.mean2[j], rstd2: m.rstd2[j], probs: m.probs[i],
			h1b: bAt(m.h1b, j), attb: bAt(m.attb, j), h2b: bAt(m.h2b, j), ab: bAt(m.ab, j)}
	}
	out := m.ix[1-cur]
	return layerBufs{x: m.ix[cur], out: out, xmid: out, h1: m.ih, h2: m.ih, qkv: m.iqkv, att: m.iatt,
		u: m.iu, a: m.iu, probs: m.probs[0], h1b: m.ihb, attb: m.iattb, h2b: m.ihb, ab: m.iab, split: true,
		kv: m.cache, l: l}
}

// forward runs the decoder at the active shape (model.Decoder over a
// pass): with keep (training) in every layer's own buffers, else in the
// shared ones with o's skipped layers and hooks.
func (m *Model) forward(o *InferOptions, keep bool) error {
	if o == nil {
		o = &InferOptions{}
	}
	hk := o.Hooks
	if hk == nil {
		hk = &Hooks{}
	}
	L := m.Cfg.NumLayers
	for _, l := range o.Skip {
		if l < 0 || l >= L {
			return fmt.Errorf("gpu: skip layer %d outside [0,%d)", l, L)
		}
	}
	p := &pass{m: m, keep: keep, hk: hk}
	_, err := model.Decoder(m.arch, model.Backend[cuda.Buf](p), func(l int) bool { return slices.Contains(o.Skip, l) }, o.NoLogits)
	return err
}

// embed writes the embedding rows of the active ids into x0. A bf16
// table (Options.WeightsBF16) is gathered as [vocab, H/2] 32-bit words,
// each a pair of bf16 values moved bit for bit by the f32 lookup kernel
// (a load and a store, no arithmetic), into the bf16 scratch ihb, then
// widened to f32.
func (m *Model) embed(x0 cuda.Buf) error {
	H, rows := m.Cfg.HiddenSize, m.rows()
	if t := m.P(embedName); !t.IsNil() {
		return m.d.Embedding(x0, t, m.ids, rows, H)
	}
	tb := m.PB(embedName)
	packed := cuda.Buf{Ptr: m.ihb.Ptr, N: rows * H / 2}
	table := cuda.Buf{Ptr: tb.Ptr, N: tb.N / 2}
	return firstErr(
		m.d.Embedding(packed, table, m.ids, rows, H/2),
		m.d.FromBF16(x0.Slice(0, rows*H), m.ihb.Slice(0, rows*H)))
}

// attention writes lb.att from lb.qkv. Training keeps every sequence's
// scores in lb.probs for the backward pass; inference runs the tensor-core
// path one sequence at a time, so its score buffer holds one sequence
// (heads × Seq × Seq), and the reference kernel without one.
func (m *Model) attention(lb *layerBufs) error {
	c, d := m.Cfg, m.d
	QD, KVD := c.QDim(), c.KVDim()
	q, dims := lb.qkv, m.dims()
	if lb.kv != nil && lb.kv.n > 0 {
		return lb.kv.attention(lb.att, q, dims, lb.l)
	}
	switch {
	case !lb.split && m.recompute:
		// the backward pass recomputes each group's scores (attnGroups)
		return m.attnGroups(lb.att, q, lb.probs, nil)
	case !lb.split && m.AttnTC:
		return d.AttentionTC(lb.att, q, q.Off(QD), q.Off(QD+KVD), dims, lb.probs)
	case !lb.split:
		return d.Attention(lb.att, q, q.Off(QD), q.Off(QD+KVD), dims, lb.probs)
	case !m.AttnTC:
		return d.Attention(lb.att, q, q.Off(QD), q.Off(QD+KVD), dims, cuda.Buf{})
	}
	return m.attnGroups(lb.att, q, lb.probs, nil)
}

// groupScores is the room attnGroups needs for scores: one sequence's
// query heads of one KV group, [Heads/KVHeads, T, T].
func (m *Model) groupScores() int {
	c := m.Cfg
	return c.NumHeads / c.NumKVHeads * m.Seq * m.Seq
}

// attnGroups runs the tensor-core attention of the active shape one
// sequence and one KV group (its query heads against their KV head) at a
// time, so probs holds one group's scores (groupScores), not every head's:
// [heads, T, T] is the largest activation at a long sequence. Each head's
// products and softmax are those of the whole call. back, when set, runs
// right after each group's forward with its dimensions and the offsets of
// its q, k, v and output columns (the backward pass under recomputation).
func (m *Model) attnGroups(att, qkv, probs cuda.Buf, back func(dims kernels.AttnDims, qo, ko, vo, ao int) error) error {
	c, d := m.Cfg, m.d
	QD, KVD, hd := c.QDim(), c.KVDim(), c.HeadDim
	dims := m.dims()
	B, T, group := dims.Batch, dims.Tq, c.NumHeads/c.NumKVHeads
	gd := dims
	gd.Batch, gd.Heads, gd.KVHeads = 1, group, 1
	for b := 0; b < B; b++ {
		for g := 0; g < c.NumKVHeads; g++ {
			row := b * T * dims.LdQ
			qo, ko, vo := row+g*group*hd, row+QD+g*hd, row+QD+KVD+g*hd
			ao := b*T*dims.LdO + g*group*hd
			if err := d.AttentionTC(att.Off(ao), qkv.Off(qo), qkv.Off(ko), qkv.Off(vo), gd, probs); err != nil {
				return err
			}
			if back != nil {
				if err := back(gd, qo, ko, vo, ao); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// pass is one forward pass of a Model as a model.Backend over device
// buffers: each step writes into the current layer's buffers (its own when
// training, the shared ones when inferring, the residual stream then
// alternating between ix[0] and ix[1]), rounds the inputs of the next
// products to bf16 in bf16 mode, and calls the hooks.
type pass struct {
	m    *Model
	keep bool
	hk   *Hooks
	cur  int       // inferring: the ix buffer holding the stream
	lb   layerBufs // the current layer's buffers
}

// hook calls f on the active rows of x (width values each) when it is set.
func (p *pass) hook(l int, f func(int, cuda.Buf, int, int) error, what string, x cuda.Buf, width int) error {
	if f == nil {
		return nil
	}
	B, T := p.m.activeB, p.m.activeT
	if err := f(l, x.Slice(0, B*T*width), B, T); err != nil {
		return fmt.Errorf("layer %d %s hook: %w", l, what, err)
	}
	return nil
}

func (p *pass) Embed() (cuda.Buf, error) {
	x0 := p.m.ix[0]
	if p.keep {
		x0 = p.m.xs[0]
	}
	return x0, p.m.embed(x0)
}

func (p *pass) Norm(l int, st model.Step, x cuda.Buf, w, b string) (cuda.Buf, error) {
	m, H := p.m, p.m.Cfg.HiddenSize
	switch st {
	case model.StepAttnNorm:
		p.lb = m.bufs(l, p.keep, p.cur)
		lb := &p.lb
		if err := p.hook(l, p.hk.LayerInput, "LayerInput", x, H); err != nil {
			return x, err
		}
		if err := m.norm(lb.h1, lb.mean1, lb.rstd1, x, w, b); err != nil {
			return x, fmt.Errorf("layer %d attention norm: %w", l, err)
		}
		if err := p.hook(l, p.hk.AttnNorm, "AttnNorm", lb.h1, H); err != nil {
			return x, err
		}
		return lb.h1, m.toBRows(lb.h1b, lb.h1, H)
	case model.StepMLPNorm:
		lb := &p.lb
		if err := m.norm(lb.h2, lb.mean2, lb.rstd2, x, w, b); err != nil {
			return x, fmt.Errorf("layer %d mlp norm: %w", l, err)
		}
		if err := p.hook(l, p.hk.MLPNorm, "MLPNorm", lb.h2, H); err != nil {
			return x, err
		}
		return lb.h2, m.toBRows(lb.h2b, lb.h2, H)
	}
	return m.hf, firstErr(m.norm(m.hf, m.meanf, m.rstdf, x, w, b), m.toBRows(m.hfb, m.hf, H))
}

func (p *pass) Linear(l int, st model.Step, x cuda.Buf, ws, bs []string) (cuda.Buf, error) {
	m, lb, c := p.m, &p.lb, p.m.Cfg
	H, F := c.HiddenSize, c.IntermediateSize
	if st == model.StepQKV {
		QD, KVD := c.QDim(), c.KVDim()
		W := QD + 2*KVD
		err := firstErr(
			m.linear(lb.qkv, 0, W, x, lb.h1b, H, ws[0], QD, false),
			m.linear(lb.qkv, QD, W, x, lb.h1b, H, ws[1], KVD, false),
			m.linear(lb.qkv, QD+KVD, W, x, lb.h1b, H, ws[2], KVD, false),
			m.addBias(lb.qkv, bs...))
		if err != nil {
			return lb.qkv, fmt.Errorf("layer %d attention input: %w", l, err)
		}
		return lb.qkv, nil
	}
	// the MLP's input products: gate|up side by side for the backward pass
	// when training, one after the other (each contiguous, for the MLPPre
	// hook) when inferring
	u, rows := lb.u, m.rows()
	var err error
	switch {
	case len(ws) == 2 && lb.split:
		err = firstErr(
			m.linear(u.Slice(0, rows*F), 0, F, x, lb.h2b, H, ws[0], F, false),
			m.linear(u.Slice(rows*F, 2*rows*F), 0, F, x, lb.h2b, H, ws[1], F, false),
			m.addBias(u.Slice(0, rows*F), bs[0]),
			m.addBias(u.Slice(rows*F, 2*rows*F), bs[1]))
	case len(ws) == 2:
		err = firstErr(
			m.linear(u, 0, 2*F, x, lb.h2b, H, ws[0], F, false),
			m.linear(u, F, 2*F, x, lb.h2b, H, ws[1], F, false),
			m.addBias(u, bs...))
	default:
		err = firstErr(m.linear(u, 0, F, x, lb.h2b, H, ws[0], F, false), m.addBias(u, bs...))
	}
	if err != nil {
		return u, fmt.Errorf("layer %d mlp: %w", l, err)
	}
	if lb.split || len(ws) == 1 {
		// the gate's (or the up) product before the activation
		if err := p.hook(l, p.hk.MLPPre, "MLPPre", u.Slice(0, rows*F), F); err != nil {
			return u, err
		}
	}
	return u, nil
}

func (p *pass) Attention(l int, qkv cuda.Buf) (cuda.Buf, error) {
	m, lb, c, d := p.m, &p.lb, p.m.Cfg, p.m.d
	QD, KVD := c.QDim(), c.KVDim()
	W := QD + 2*KVD
	rows := m.rows()
	if rot := c.RotaryDim(); rot > 0 {
		pos, cos, sin := m.pos, m.cos, m.sin
		if lb.kv != nil { // absolute positions Len()… and tables as long as the cache
			pos, cos, sin = lb.kv.pos, lb.kv.cos, lb.kv.sin
		}
		if err := firstErr(
			d.ApplyRope(qkv, rows, W, c.NumHeads, c.HeadDim, rot, pos, cos, sin, false),
			d.ApplyRope(qkv.Off(QD), rows, W, c.NumKVHeads, c.HeadDim, rot, pos, cos, sin, false)); err != nil {
			return lb.att, fmt.Errorf("layer %d rope: %w", l, err)
		}
	}
	if lb.kv != nil {
		if err := lb.kv.store(qkv, l, m.activeB, m.activeT); err != nil {
			return lb.att, fmt.Errorf("layer %d kv cache: %w", l, err)
		}
	}
	if err := m.attention(lb); err != nil {
		return lb.att, fmt.Errorf("layer %d attention: %w", l, err)
	}
	if err := p.hook(l, p.hk.AttnHeads, "AttnHeads", lb.att, QD); err != nil {
		return lb.att, err
	}
	return lb.att, m.toBRows(lb.attb, lb.att, QD)
}

func (p *pass) Activation(l int, u cuda.Buf) (cuda.Buf, error) {
	m, lb, c, d := p.m, &p.lb, p.m.Cfg, p.m.d
	F, rows := c.IntermediateSize, m.rows()
	var err error
	switch {
	case c.GatedMLP() && lb.split:
		err = d.ApplyGated(m.act, lb.a, u.Slice(0, rows*F), u.Slice(rows*F, 2*rows*F), rows, F, F)
	case c.GatedMLP():
		err = d.ApplyGated(m.act, lb.a, u, u.Off(F), rows, F, 2*F)
	default:
		err = d.Activate(m.act, lb.a, u.Slice(0, rows*F))
	}
	if err != nil {
		return lb.a, fmt.Errorf("layer %d mlp: %w", l, err)
	}
	if err := p.hook(l, p.hk.MLPPost, "MLPPost", lb.a, F); err != nil {
		return lb.a, err
	}
	return lb.a, m.toBRows(lb.ab, lb.a, F)
}

// AddLinear writes x + y·Wᵀ as one product accumulating onto a copy of
// the stream: into xmid after attention, into the layer's output after
// the MLP.
func (p *pass) AddLinear(l int, st model.Step, x, y cuda.Buf, w, b string) (cuda.Buf, error) {
	m, lb, c := p.m, &p.lb, p.m.Cfg
	H, rows := c.HiddenSize, m.rows()
	if st == model.StepAttnOut {
		err := firstErr(
			m.d.CopyBuf(lb.xmid.Slice(0, rows*H), x.Slice(0, rows*H)),
			m.linear(lb.xmid, 0, H, y, lb.attb, c.QDim(), w, H, true),
			m.addBias(lb.xmid, b))
		if err != nil {
			return lb.xmid, fmt.Errorf("layer %d attention: %w", l, err)
		}
		return lb.xmid, nil
	}
	var err error
	if x != lb.out {
		err = m.d.CopyBuf(lb.out.Slice(0, rows*H), x.Slice(0, rows*H))
	}
	if err == nil {
		err = firstErr(m.linear(lb.out, 0, H, y, lb.ab, c.IntermediateSize, w, H, true), m.addBias(lb.out, b))
	}
	if err != nil {
		return lb.out, fmt.Errorf("layer %d mlp: %w", l, err)
	}
	if !p.keep {
		p.cur = 1 - p.cur
	}
	if p.keep && m.packed {
		if err := m.storeLayer(l); err != nil {
			return lb.out, fmt.Errorf("layer %d bf16 activations: %w", l, err)
		}
	}
	return lb.out, p.hook(l, p.hk.LayerOutput, "LayerOutput", lb.out, H)
}

func (p *pass) Logits(h cuda.Buf, w string) (cuda.Buf, error) {
	m, c := p.m, p.m.Cfg
	if err := m.ensureLogits(); err != nil {
		return m.logits, err
	}
	if m.Chunked() {
		return m.logits, nil // LogitsRows computes them chunk by chunk
	}
	return m.logits, m.linear(m.logits, 0, c.VocabSize, h, m.hfb, c.HiddenSize, w, c.VocabSize, false)
}

// ensureLogits allocates the logits buffer at the first pass that wants
// it (an inference model's; a training model's is allocated with its
// activations).
func (m *Model) ensureLogits() error {
	if !m.logits.IsNil() {
		return nil
	}
	var err error
	if m.logits, err = m.alloc(m.logitRows() * m.Cfg.VocabSize); err != nil {
		return fmt.Errorf("logits: %w", err)
	}
	return nil
}

// logitRows is the rows the logits buffer holds.
func (m *Model) logitRows() int {
	if m.Chunked() {
		return m.logitChunk
	}
	return m.Batch * m.Seq
}

// Chunked reports logits computed a chunk of rows at a time
// (Options.LogitChunk): Forward leaves the final norm's output, and
// LogitsRows fills the logits buffer.
func (m *Model) Chunked() bool { return m.logitChunk > 0 }

// LogitChunk is the rows of one logit chunk (Batch·Seq when unchunked).
func (m *Model) LogitChunk() int { return m.logitRows() }

// LogitsRows writes the logits of rows [r0, r1) of the last forward pass
// into the first (r1−r0)·vocab values of Logits(), from the final norm's
// output (at most LogitChunk rows at a time).
func (m *Model) LogitsRows(r0, r1 int) error {
	c := m.Cfg
	n, H, V := r1-r0, c.HiddenSize, c.VocabSize
	if r0 < 0 || n <= 0 || n > m.logitRows() || r1 > m.rows() {
		return fmt.Errorf("gpu: logits of rows [%d,%d) (chunk %d, %d rows)", r0, r1, m.logitRows(), m.rows())
	}
	if err := m.ensureLogits(); err != nil {
		return err
	}
	head := m.arch.HeadTensor()
	if m.bf16 {
		return m.d.GemmBF16(false, true, n, V, H, 1, m.hfb.Off(r0*H), H, m.PB(head), H, 0, m.logits, V)
	}
	return m.d.Sgemm(false, true, n, V, H, 1, m.hf.Off(r0*H), H, m.P(head), H, 0, m.logits, V)
}

// Logits is the buffer Forward and Infer write the logits into: [rows,
// vocab] for the rows of the active shape (Batch·Seq after SetBatch, B'·T
// after SetInputs), in the first rows·vocab values. An inference model has
// none (a zero Buf) until its first pass with logits.
func (m *Model) Logits() cuda.Buf { return m.logits }

// QKNorm normalises the query and key heads of the fused rows in place.
func (p *pass) QKNorm(l int, qkv cuda.Buf, q, k string) (cuda.Buf, error) {
	if err := p.m.qkNormForward(l, qkv, q, k, p.keep); err != nil {
		return qkv, fmt.Errorf("layer %d q/k norm: %w", l, err)
	}
	return qkv, nil
}

// Device is the device the model lives on (its pool's statistics: a memory
// plan's calibration).
func (m *Model) Device() *cuda.Device { return m.d }
