//go:build minitron_cuda || minitron_cudaemu

package eval

import (
	"fmt"
	"slices"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
	"github.com/minitron-dev/minitron/model/kernels/cuda/gputrain"
)

// DeviceBuilt reports whether this binary can run a DeviceLM: nil in a
// CUDA build.
func DeviceBuilt() error { return nil }

// DeviceLM adapts a model to LM on GPU 0: the weights are uploaded once
// (f32, or the matrices in bf16 only with DeviceOptions.BF16) into a
// gputrain inference model, and every score or generation
// step is a device forward pass (gputrain.Model.Infer) whose per-token
// log-probabilities and arg-maxes (TokenLogProbs) come back to the host.
//
// Score has no KV cache: each continuation is one row over the whole
// (ctx+cont)[:-1], as lm-eval's HF model runs it. Rows of several requests
// share a pass, right-padded to a bucket length (bucketLen), longest first,
// so a short request never pays for the window. Generate re-runs the
// growing sequence once per new token (no device KV cache either): fine
// for gsm8k-sized answers, quadratic in their length.
//
// The numbers are ModelLM's up to float32 rounding on the device (and
// TF32 products unless DeviceOptions.NoTF32). A DeviceLM is not safe for
// concurrent use; Close frees the device.
type DeviceLM struct {
	m *model.Model // config, EOS and the weights' source
	o DeviceOptions
	d *cuda.Device
	g *gputrain.Model // nil until the first pass; rebuilt when it must grow
}

// NewDeviceLM opens GPU 0 for m, whose weights stay readable (not Closed)
// while the DeviceLM is used: they are read when the first pass sizes the
// device model and again if a longer sequence makes it grow.
func NewDeviceLM(m *model.Model, o DeviceOptions) (*DeviceLM, error) {
	if m == nil {
		return nil, fmt.Errorf("--device cuda: no model")
	}
	if o.Rows < 0 || o.Seq < 0 {
		return nil, fmt.Errorf("--device cuda: rows %d and sequence capacity %d must not be negative", o.Rows, o.Seq)
	}
	d, err := cuda.Open(0)
	if err != nil {
		return nil, fmt.Errorf("--device cuda: %w", err)
	}
	if o.NoTF32 {
		if err := d.SetTF32(false); err != nil {
			d.Close()
			return nil, fmt.Errorf("--device cuda: %w", err)
		}
	}
	a := &DeviceLM{m: m, o: o, d: d}
	if o.Seq > 0 {
		a.o.Seq = min(o.Seq, a.MaxLength())
	}
	return a, nil
}

// MaxLength implements LM, as ModelLM.MaxLength.
func (a *DeviceLM) MaxLength() int {
	if a.o.MaxLen > 0 {
		return a.o.MaxLen
	}
	if n := a.m.Cfg.MaxPositionEmbeddings; n > 0 {
		return n
	}
	return 2048
}

// Device names the GPU (or the emulator) and the cuBLAS library in use.
func (a *DeviceLM) Device() (name, blas string) { return a.d.Name, a.d.BLASLibrary() }

// Close frees the device model and releases the GPU.
func (a *DeviceLM) Close() error {
	if a.g != nil {
		a.g.Free()
		a.g = nil
	}
	if a.d == nil {
		return nil
	}
	err := a.d.Close()
	a.d = nil
	return err
}

// ensure makes the device model hold sequences of need tokens: built on
// first use, rebuilt (weights uploaded again) when need exceeds it. Without
// a fixed DeviceOptions.Seq the capacity is need rounded up to a power of
// two, at most the window (but never below need).
func (a *DeviceLM) ensure(need int) error {
	if a.d == nil {
		return fmt.Errorf("--device cuda: the DeviceLM is closed")
	}
	if a.g != nil && need <= a.g.Seq {
		return nil
	}
	seq := a.o.Seq
	if seq == 0 {
		seq = max(need, min(a.MaxLength(), nextPow2(need)))
	}
	if need > seq {
		return fmt.Errorf("--device cuda: a %d-token sequence exceeds the device model's %d-token capacity", need, seq)
	}
	rows := a.o.Rows
	if rows == 0 {
		rows = autoRows(a.m.Cfg, seq, a.o.MemBudget, a.o.BF16)
	}
	if a.g != nil {
		a.g.Free()
		a.g = nil
	}
	g, err := gputrain.NewModelOpts(a.d, a.m.Cfg, a.m.Source(), gputrain.Options{Batch: rows, Seq: seq, WeightsBF16: a.o.BF16})
	if err != nil {
		return fmt.Errorf("--device cuda: %w", err)
	}
	a.g = g
	return nil
}

// run is one device pass: rows (equal length) in, per-position log p of
// the targets and arg-maxes out, [len(ids)·T].
func (a *DeviceLM) run(ids, targets [][]int32) (logp []float32, argmax []int32, err error) {
	if err := a.g.SetInputs(ids, targets); err != nil {
		return nil, nil, err
	}
	if err := a.g.Infer(nil); err != nil {
		return nil, nil, err
	}
	return a.g.TokenLogProbs()
}

// Score implements LM: each continuation is a row of its own, scored in
// passes of up to the device model's Batch rows.
func (a *DeviceLM) Score(reqs []ScoreRequest) ([][]TokenScores, error) {
	rows, err := scoreRows(reqs, a.MaxLength(), a.m.Cfg.VocabSize)
	if err != nil {
		return nil, err
	}
	out := make([][]TokenScores, len(reqs))
	for i, r := range reqs {
		out[i] = make([]TokenScores, len(r.Continuations))
	}
	if len(rows) == 0 {
		return out, nil
	}
	longest := 0
	for _, r := range rows {
		longest = max(longest, len(r.ids))
	}
	if err := a.ensure(longest); err != nil {
		return nil, err
	}
	for _, p := range planPasses(rows, a.g.Batch, a.g.Seq) {
		ids, targets := passInputs(rows, p)
		logp, argmax, err := a.run(ids, targets)
		if err != nil {
			return nil, fmt.Errorf("score (cuda): %w", err)
		}
		for k, ri := range p.rows {
			r := rows[ri]
			s := TokenScores{LogProb: make([]float64, len(r.target)), Greedy: make([]bool, len(r.target))}
			for i, id := range r.target {
				j := k*p.T + r.first + i
				s.LogProb[i], s.Greedy[i] = float64(logp[j]), int(argmax[j]) == id
			}
			out[r.req][r.cont] = s
		}
	}
	return out, nil
}

// Generate implements LM: greedy decoding as ModelLM.Generate (same EOS and
// stop rules), one full pass over the sequence so far per new token.
func (a *DeviceLM) Generate(ctx []int, maxNew int, stop func(gen []int) bool) ([]int, error) {
	if len(ctx) == 0 {
		return nil, fmt.Errorf("generate: empty context")
	}
	if maxNew <= 0 {
		return nil, nil
	}
	eos := a.o.EOS
	if eos == nil {
		eos = a.m.EOS
	}
	seq, err := toIDs32(ctx, a.m.Cfg.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	// The longest input: the context and all but the last new token.
	if err := a.ensure(len(ctx) + maxNew - 1); err != nil {
		return nil, err
	}
	var gen []int
	for {
		_, argmax, err := a.run([][]int32{seq}, nil)
		if err != nil {
			return nil, fmt.Errorf("generate (cuda): %w", err)
		}
		next := int(argmax[len(seq)-1])
		if slices.Contains(eos, next) {
			break
		}
		gen = append(gen, next)
		if len(gen) >= maxNew || (stop != nil && stop(gen)) {
			break
		}
		seq = append(seq, int32(next))
	}
	return gen, nil
}

// SequenceNLL is `eval nll` on the device: one pass over ids, the negative
// log-likelihood of each ids[t+1] given ids[..t] (len(ids)-1 values, as
// model.SequenceNLL) and, when logits is set, the [len(ids), vocab] logits.
func (a *DeviceLM) SequenceNLL(ids []int, logits bool) ([]float64, []float32, error) {
	T, V := len(ids), a.m.Cfg.VocabSize
	if T < 2 {
		return nil, nil, fmt.Errorf("nll: need at least 2 tokens, got %d", T)
	}
	in, err := toIDs32(ids, V)
	if err != nil {
		return nil, nil, fmt.Errorf("nll: %w", err)
	}
	targets := make([]int32, T)
	copy(targets, in[1:])
	targets[T-1] = -1
	if err := a.ensure(T); err != nil {
		return nil, nil, err
	}
	logp, _, err := a.run([][]int32{in}, [][]int32{targets})
	if err != nil {
		return nil, nil, fmt.Errorf("nll (cuda): %w", err)
	}
	nll := make([]float64, T-1)
	for t := range nll {
		nll[t] = -float64(logp[t])
	}
	var lg []float32
	if logits {
		lg = make([]float32, T*V)
		if err := a.d.Download(lg, a.g.Logits().Slice(0, T*V)); err != nil {
			return nil, nil, fmt.Errorf("nll (cuda): logits: %w", err)
		}
	}
	return nll, lg, nil
}

// toIDs32 checks ids against the vocabulary and converts them.
func toIDs32(ids []int, vocab int) ([]int32, error) {
	out := make([]int32, len(ids))
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("token id %d at position %d outside the vocabulary [0,%d)", id, i, vocab)
		}
		out[i] = int32(id)
	}
	return out, nil
}
