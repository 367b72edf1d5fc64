//go:build minitron_cuda || minitron_cudaemu

package eval

import (
	"fmt"
	"math"
	"math/rand"
	"slices"

	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// DeviceLM adapts a model to LM on GPU 0: the weights are uploaded once
// (f32, or the matrices in bf16 only with DeviceOptions.BF16) into a
// gpu inference model, and every score or generation
// step is a device forward pass (gpu.Model.Infer, or InferCached over
// a device KV cache) whose per-token log-probabilities and arg-maxes
// (TokenLogProbs) come back to the host.
//
// Score runs a request with several continuations and a context at least
// as long as the longest of them as ModelLM does on the CPU: the context
// once into a device KV cache, then its continuations together over it.
// Any other continuation is one row over the whole (ctx+cont)[:-1], as
// lm-eval's HF model runs it; rows of several requests share a pass,
// right-padded to a bucket length (bucketLen), longest first, so a short
// request never pays for the window. Generate keeps a device KV
// cache (gpu.KVCache): the context runs once, then one token's
// forward per new token; only when the cache cannot be allocated does it
// re-run the growing sequence once per token (quadratic). Decode is the
// generate command's decoding (model.Model.Generate's options: greedy or
// sampled on the host from the downloaded last-position logits) over the
// same cache handling.
//
// The numbers are ModelLM's up to float32 rounding on the device (and
// TF32 products unless DeviceOptions.NoTF32). A DeviceLM is not safe for
// concurrent use; Close frees the device.
type DeviceLM struct {
	m *model.Model // config, EOS and the weights' source
	o DeviceOptions
	d *cuda.Device
	g *gpu.Model // nil until the first pass; rebuilt when it must grow
	// kc is Generate's and Decode's cache on g (one row), kept between
	// calls; freed when g is rebuilt.
	kc *gpu.KVCache
	// forwarded counts the token positions Generate has run through the
	// device model (the work a cache saves), sharedReqs the requests Score
	// ran with a shared context; read by the tests.
	forwarded, sharedReqs int
}

// NewDeviceLM opens GPU 0 for m, whose weights stay readable (not Closed)
// while the DeviceLM is used: they are read when the first pass sizes the
// device model and again if a longer sequence makes it grow.
func NewDeviceLM(m *model.Model, o DeviceOptions) (*DeviceLM, error) {
	if m == nil {
		return nil, fmt.Errorf("DeviceLM: no model")
	}
	if o.Rows < 0 || o.Seq < 0 {
		return nil, fmt.Errorf("DeviceLM: rows %d and sequence capacity %d must not be negative", o.Rows, o.Seq)
	}
	d, err := cuda.Open(0)
	if err != nil {
		return nil, fmt.Errorf("DeviceLM: %w", err)
	}
	if o.NoTF32 {
		if err := d.SetTF32(false); err != nil {
			d.Close()
			return nil, fmt.Errorf("DeviceLM: %w", err)
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

// Device names the GPU (or the emulator) and the cuBLAS library in use;
// both empty once the DeviceLM is closed.
func (a *DeviceLM) Device() (name, blas string) {
	if a.d == nil {
		return "", ""
	}
	return a.d.Name, a.d.BLASLibrary()
}

// Close frees the device model and releases the GPU.
func (a *DeviceLM) Close() error {
	a.freeCache()
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
		return fmt.Errorf("DeviceLM: the DeviceLM is closed")
	}
	if a.g != nil && need <= a.g.Seq {
		return nil
	}
	seq := a.o.Seq
	if seq == 0 {
		seq = max(need, min(a.MaxLength(), nextPow2(need)))
	}
	if need > seq {
		return fmt.Errorf("DeviceLM: a %d-token sequence exceeds the device model's %d-token capacity", need, seq)
	}
	rows := a.o.Rows
	if rows == 0 {
		rows = autoRows(a.m.Cfg, seq, a.o.MemBudget, a.o.BF16)
	}
	a.freeCache()
	if a.g != nil {
		a.g.Free()
		a.g = nil
	}
	g, err := gpu.NewModelOpts(a.d, a.m.Cfg, a.m.Source(), gpu.Options{Batch: rows, Seq: seq, WeightsBF16: a.o.BF16})
	if err != nil {
		return fmt.Errorf("DeviceLM: %w", err)
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

// Score implements LM. A request with several continuations whose context
// is at least as long as the longest of them runs its context once into a
// device KV cache and then its continuations together over it
// (scoreShared, as ModelLM.scoreShared on the CPU). Every other
// continuation (and a shared request's when no cache fits) is a row of its
// own, scored in passes of up to the device model's Batch rows.
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
	// sized for the full rows, so a request that falls back needs no rebuild
	if err := a.ensure(longest); err != nil {
		return nil, err
	}
	shared := make([]bool, len(reqs)) // scored over a shared context
	for i, r := range reqs {
		if !sharesContext(r) {
			continue
		}
		if shared[i], err = a.scoreShared(r, out[i]); err != nil {
			return nil, fmt.Errorf("score (cuda): %w", err)
		}
		if shared[i] {
			a.sharedReqs++
		}
	}
	var flat []deviceRow
	for _, r := range rows {
		if !shared[r.req] {
			flat = append(flat, r)
		}
	}
	for _, p := range planPasses(flat, a.g.Batch, a.g.Seq) {
		ids, targets := passInputs(flat, p)
		logp, argmax, err := a.run(ids, targets)
		if err != nil {
			return nil, fmt.Errorf("score (cuda): %w", err)
		}
		for k, ri := range p.rows {
			r := flat[ri]
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

// sharesContext reports whether Score runs r's context once for all its
// continuations: several of them, and a context at least as long as the
// longest (else the separate rows, which batch with other requests, cost
// about as much).
func sharesContext(r ScoreRequest) bool {
	if len(r.Continuations) < 2 {
		return false
	}
	longest := 0
	for _, c := range r.Continuations {
		longest = max(longest, len(c))
	}
	return len(r.Context) >= longest
}

// scoreShared scores r's continuations into out over a KV cache: the
// context but its last token once, in row 0, copied to the other rows;
// then per group of up to Batch continuations one pass of rows
// [last context token, cont[:-1]…] (right-padded; causal, so padding
// changes nothing before it) with the continuations as targets. It
// returns false, having scored nothing, when no cache fits (the pool, or
// the reference attention kernel's shared memory for a long context).
func (a *DeviceLM) scoreShared(r ScoreRequest, out []TokenScores) (bool, error) {
	P, longest := len(r.Context)-1, 0
	for _, c := range r.Continuations {
		longest = max(longest, len(c))
	}
	need := P + longest
	if need > a.d.AttentionMaxTk(a.m.Cfg.HeadDim) || longest > a.g.Seq || P > a.g.Seq {
		return false, nil
	}
	R := min(len(r.Continuations), a.g.Batch)
	kc, err := a.g.NewKVCache(R, need)
	if err != nil {
		return false, nil
	}
	defer kc.Free()
	ctx := make([]int32, len(r.Context))
	for i, id := range r.Context {
		ctx[i] = int32(id) // checked by scoreRows
	}
	if P > 0 {
		if err := a.g.SetInputs([][]int32{ctx[:P]}, nil); err != nil {
			return false, err
		}
		if err := a.g.InferCached(kc, nil); err != nil {
			return false, err
		}
		for b := 1; b < R; b++ {
			if err := kc.CopyRow(b, 0); err != nil {
				return false, err
			}
		}
	}
	for g0 := 0; g0 < len(r.Continuations); g0 += R {
		group := r.Continuations[g0:min(g0+R, len(r.Continuations))]
		T := 0
		for _, c := range group {
			T = max(T, len(c))
		}
		ids, targets := make([][]int32, len(group)), make([][]int32, len(group))
		for k, c := range group {
			ids[k], targets[k] = make([]int32, T), make([]int32, T)
			ids[k][0] = ctx[P]
			for t := range T {
				targets[k][t] = -1
				if t < len(c) {
					targets[k][t] = int32(c[t])
				}
				if t > 0 && t < len(c) {
					ids[k][t] = int32(c[t-1])
				}
			}
		}
		if err := kc.Truncate(P); err != nil {
			return false, err
		}
		if err := a.g.SetInputs(ids, targets); err != nil {
			return false, err
		}
		if err := a.g.InferCached(kc, nil); err != nil {
			return false, err
		}
		logp, argmax, err := a.g.TokenLogProbs()
		if err != nil {
			return false, err
		}
		for k, c := range group {
			s := TokenScores{LogProb: make([]float64, len(c)), Greedy: make([]bool, len(c))}
			for t, id := range c {
				s.LogProb[t], s.Greedy[t] = float64(logp[k*T+t]), int(argmax[k*T+t]) == id
			}
			out[g0+k] = s
		}
	}
	return true, nil
}

// Generate implements LM: greedy decoding as ModelLM.Generate (same EOS and
// stop rules). The context runs once into a device KV cache, then each new
// token is one single-token pass over it; without room for the cache (or
// beyond the attention kernel's ~12k positions), one full pass over the
// sequence so far per new token.
func (a *DeviceLM) Generate(ctx []int, maxNew int, stop func(gen []int) bool) ([]int, error) {
	if len(ctx) == 0 {
		return nil, fmt.Errorf("generate: empty context")
	}
	if maxNew <= 0 {
		return nil, nil
	}
	seq, err := toIDs32(ctx, a.m.Cfg.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	step, err := a.stepper(len(ctx), maxNew)
	if err != nil {
		return nil, err
	}
	return a.generateGreedy(seq, maxNew, stop, step)
}

// generateFull is Generate without a cache: one pass over the whole
// sequence per new token.
func (a *DeviceLM) generateFull(seq []int32, maxNew int, stop func(gen []int) bool) ([]int, error) {
	step, err := a.fullStepper(len(seq) + maxNew - 1)
	if err != nil {
		return nil, err
	}
	return a.generateGreedy(seq, maxNew, stop, step)
}

// generateGreedy is LM.Generate's loop over step: the device's arg-max
// each step; an EOS token ends it and is not returned.
func (a *DeviceLM) generateGreedy(seq []int32, maxNew int, stop func(gen []int) bool, step func([]int32) (int, error)) ([]int, error) {
	eos := a.o.EOS
	if eos == nil {
		eos = a.m.EOS
	}
	onEOS := false
	gen, err := decodeLoop(seq, func(seq []int32) (int, error) {
		last, err := step(seq)
		if err != nil {
			return 0, err
		}
		return a.argmaxAt(last)
	}, func(gen []int) bool {
		if slices.Contains(eos, gen[len(gen)-1]) {
			onEOS = true
			return true
		}
		return len(gen) >= maxNew || (stop != nil && stop(gen))
	})
	if onEOS {
		gen = gen[:len(gen)-1]
	}
	return gen, err
}

// Decode is model.Model.Generate on the device, for the generate command:
// the same options, checks, stop rules and result (the EOS token included
// when it ended generation, OnToken called as there). Greedy (temperature
// 0) takes each step's arg-max computed on the device; sampling downloads
// the last position's logits (V floats a step) and draws with
// model.SampleToken and a rand.Source seeded with opt.Seed, so with the
// same logits it draws the CPU's tokens. Decoding runs over a device KV
// cache as Generate's. opt.EOS nil means DeviceOptions.EOS, else the
// model's.
func (a *DeviceLM) Decode(prompt []int, opt model.GenerateOptions) (*model.GenerateResult, error) {
	if err := opt.Check(prompt); err != nil {
		return nil, err
	}
	seq, err := toIDs32(prompt, a.m.Cfg.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	eos := opt.EOS
	if eos == nil {
		eos = a.o.EOS
	}
	if eos == nil {
		eos = a.m.EOS
	}
	step, err := a.stepper(len(prompt), opt.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	pick := a.argmaxAt
	if opt.Temperature != 0 {
		rng := rand.New(rand.NewSource(opt.Seed))
		V := a.m.Cfg.VocabSize
		row := make([]float32, V)
		pick = func(last int) (int, error) {
			if err := a.d.Download(row, a.g.Logits().Slice(last*V, (last+1)*V)); err != nil {
				return 0, err
			}
			for _, v := range row {
				if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
					return 0, a.m.ExplainNonFinite("logits")
				}
			}
			return model.SampleToken(row, opt.Temperature, opt.TopK, opt.TopP, rng), nil
		}
	}
	res := &model.GenerateResult{}
	res.Tokens, err = decodeLoop(seq, func(seq []int32) (int, error) {
		last, err := step(seq)
		if err != nil {
			return 0, err
		}
		return pick(last)
	}, func(gen []int) bool {
		tok := gen[len(gen)-1]
		if slices.Contains(eos, tok) {
			res.StoppedOnEOS = true
			if opt.OnToken != nil {
				opt.OnToken(tok)
			}
			return true
		}
		if opt.OnToken != nil && !opt.OnToken(tok) {
			return true
		}
		return len(gen) == opt.MaxNewTokens
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// argmaxAt is the arg-max (first maximum) of row last of the device's
// current logits, computed there: 8 bytes a row come back.
func (a *DeviceLM) argmaxAt(last int) (int, error) {
	_, argmax, err := a.g.TokenLogProbs()
	if err != nil {
		return 0, err
	}
	// The kernel's comparisons skip NaN, so a row of NaN logits gives
	// token 0 at every step: check the chosen logit itself (one float).
	am := int(argmax[last])
	V := a.m.Cfg.VocabSize
	var top [1]float32
	if err := a.d.Download(top[:], a.g.Logits().Slice(last*V+am, last*V+am+1)); err != nil {
		return 0, err
	}
	if v := float64(top[0]); math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, a.m.ExplainNonFinite("logits")
	}
	return am, nil
}

// decodeLoop is the decoding loop of Generate and Decode: next picks the
// token after seq (running the positions the device has not seen), done
// sees the tokens so far after each is appended and ends the loop.
func decodeLoop(seq []int32, next func(seq []int32) (int, error), done func(gen []int) bool) ([]int, error) {
	var gen []int
	for {
		tok, err := next(seq)
		if err != nil {
			return nil, fmt.Errorf("generate (cuda): %w", err)
		}
		gen = append(gen, tok)
		if done(gen) {
			return gen, nil
		}
		seq = append(seq, int32(tok))
	}
}

// stepper prepares decoding up to maxNew tokens after a ctxLen-token
// context and returns step: it runs the positions of seq the device has
// not run yet and returns the row, in that pass, of seq's last position,
// whose logits (and arg-max) are then on the device. Over a KV cache the
// first step runs the context and each later one the last new token;
// without room for a cache (fullStepper) each step runs the whole
// sequence.
func (a *DeviceLM) stepper(ctxLen, maxNew int) (func(seq []int32) (int, error), error) {
	// The positions run: the context and all but the last new token.
	need := ctxLen + maxNew - 1
	if err := a.ensure(ctxLen); err != nil {
		return nil, err
	}
	kc, err := a.genCache(need)
	if err != nil {
		return a.fullStepper(need)
	}
	return func(seq []int32) (int, error) {
		in := seq[kc.Len():] // the context first, then the last new token
		a.forwarded += len(in)
		if err := a.g.SetInputs([][]int32{in}, nil); err != nil {
			return 0, err
		}
		if err := a.g.InferCached(kc, nil); err != nil {
			return 0, err
		}
		return len(in) - 1, nil
	}, nil
}

// fullStepper is stepper without a cache, for sequences of up to need
// positions: one pass over the whole sequence per step.
func (a *DeviceLM) fullStepper(need int) (func(seq []int32) (int, error), error) {
	if err := a.ensure(need); err != nil {
		return nil, err
	}
	return func(seq []int32) (int, error) {
		a.forwarded += len(seq)
		if err := a.g.SetInputs([][]int32{seq}, nil); err != nil {
			return 0, err
		}
		if err := a.g.Infer(nil); err != nil {
			return 0, err
		}
		return len(seq) - 1, nil
	}, nil
}

// genCache is an empty one-row cache on the current device model for need
// positions: the kept one when it is large enough, else a new one. It
// fails when the pool has no room or the reference attention kernel's
// shared memory (a row of Tk scores) cannot hold need keys.
func (a *DeviceLM) genCache(need int) (*gpu.KVCache, error) {
	if need > a.d.AttentionMaxTk(a.m.Cfg.HeadDim) {
		return nil, fmt.Errorf("generate: %d positions exceed the attention kernel's shared memory", need)
	}
	if a.kc != nil && a.kc.Cap >= need {
		a.kc.Reset()
		return a.kc, nil
	}
	a.freeCache()
	// at least a power of two, so growing answers do not reallocate each time
	kc, err := a.g.NewKVCache(1, max(need, min(a.MaxLength(), nextPow2(need))))
	if err != nil {
		return nil, err
	}
	a.kc = kc
	return kc, nil
}

func (a *DeviceLM) freeCache() {
	if a.kc != nil {
		a.kc.Free()
		a.kc = nil
	}
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
