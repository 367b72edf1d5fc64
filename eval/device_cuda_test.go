//go:build minitron_cuda || minitron_cudaemu

package eval

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// DeviceLM against ModelLM on the same weights, TF32 off: these run on the
// CPU emulator without a GPU (go test -tags minitron_cudaemu -run
// DeviceCUDA ./eval/) and on GPU 0 with -tags minitron_cuda.

// tinyDeviceModel is a random resident model: 2 layers, hidden 48, V 97.
// std 0.3 spreads the logits so arg-maxes are not near ties.
func tinyDeviceModel(t *testing.T, fam model.Family, seed uint64) *model.Model {
	t.Helper()
	cfg, err := model.SyntheticConfig(fam, 2, 48, 4, 2, 96, 97)
	if err != nil {
		t.Fatal(err)
	}
	src := model.NewRandomSource(cfg, model.F32, seed)
	src.Std = 0.3
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newDeviceLM(t *testing.T, m *model.Model, o DeviceOptions) *DeviceLM {
	t.Helper()
	o.NoTF32 = true
	d, err := NewDeviceLM(m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func randIDs(r *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(vocab)
	}
	return ids
}

// compareScores returns the largest |Δ log p| and fails on a differing
// shape or greedy flag.
func compareScores(t *testing.T, what string, got, want [][]TokenScores) float64 {
	t.Helper()
	worst := 0.0
	if len(got) != len(want) {
		t.Fatalf("%s: %d results, want %d", what, len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: request %d: %d continuations, want %d", what, i, len(got[i]), len(want[i]))
		}
		for c := range want[i] {
			g, w := got[i][c], want[i][c]
			if len(g.LogProb) != len(w.LogProb) {
				t.Fatalf("%s: request %d cont %d: %d tokens, want %d", what, i, c, len(g.LogProb), len(w.LogProb))
			}
			for k := range w.LogProb {
				worst = max(worst, math.Abs(g.LogProb[k]-w.LogProb[k]))
				if g.Greedy[k] != w.Greedy[k] {
					t.Errorf("%s: request %d cont %d token %d: greedy %v, want %v", what, i, c, k, g.Greedy[k], w.Greedy[k])
				}
			}
		}
	}
	return worst
}

// Several requests of different lengths with one to four continuations,
// in passes of at most 3 rows, then a longer batch that makes the device
// model grow (weights uploaded again): every log-probability within 1e-4
// of ModelLM's KV-cache scores, the same greedy flags.
func TestScoreDeviceCUDA(t *testing.T) {
	for _, fam := range []model.Family{model.Llama, model.Nemotron} {
		t.Run(string(fam), func(t *testing.T) {
			m := tinyDeviceModel(t, fam, 11)
			ref := &ModelLM{M: m}
			dev := newDeviceLM(t, m, DeviceOptions{Rows: 3})
			r := rand.New(rand.NewPCG(5, 6))
			mk := func(n, maxCtx int) []ScoreRequest {
				reqs := make([]ScoreRequest, n)
				for i := range reqs {
					reqs[i].Context = randIDs(r, 1+r.IntN(maxCtx), 97)
					for c := 0; c < 1+r.IntN(4); c++ {
						reqs[i].Continuations = append(reqs[i].Continuations, randIDs(r, 1+r.IntN(6), 97))
					}
				}
				return reqs
			}
			worst := 0.0
			for round, reqs := range [][]ScoreRequest{mk(5, 12), mk(4, 40)} {
				want, err := ref.Score(reqs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dev.Score(reqs)
				if err != nil {
					t.Fatal(err)
				}
				worst = max(worst, compareScores(t, string(fam), got, want))
				if round == 0 && dev.g.Seq >= 40 {
					t.Fatalf("short requests sized the device model for %d tokens", dev.g.Seq)
				}
			}
			t.Logf("%s: max |Δ log p| %.3g over %d-token capacity, %d requests over a shared context", fam, worst, dev.g.Seq, dev.sharedReqs)
			if dev.sharedReqs == 0 {
				t.Errorf("no request ran over a shared context")
			}
			if worst > 1e-4 {
				t.Errorf("%s: max |Δ log p| %.3g > 1e-4", fam, worst)
			}
			if _, err := dev.Score([]ScoreRequest{{Context: make([]int, 4090), Continuations: [][]int{{1, 2, 3, 4, 5, 6, 7, 8}}}}); err == nil {
				t.Error("a request beyond the window was scored")
			}
		})
	}
}

// Requests that share their context (run once into a device KV cache,
// then the continuations together) against ModelLM: more continuations
// than the device model's rows (groups of 2), continuations of one token
// (a one-position pass), a context exactly as long as the longest
// continuation, next to requests scored as separate rows (one
// continuation; a context shorter than a continuation), on a mistral with
// a sliding window shorter than the sequences.
func TestScoreSharedDeviceCUDA(t *testing.T) {
	cfg, err := model.SyntheticConfig(model.Mistral, 2, 48, 4, 2, 96, 97)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SlidingWindow = 5
	src := model.NewRandomSource(cfg, model.F32, 17)
	src.Std = 0.3
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(13, 14))
	conts := func(lens ...int) [][]int {
		var cs [][]int
		for _, n := range lens {
			cs = append(cs, randIDs(r, n, 97))
		}
		return cs
	}
	reqs := []ScoreRequest{
		{Context: randIDs(r, 10, 97), Continuations: conts(3, 1, 4, 2, 4)}, // shared, groups 2+2+1
		{Context: randIDs(r, 1, 97), Continuations: conts(2, 3)},           // context shorter: rows
		{Context: randIDs(r, 3, 97), Continuations: conts(1, 1, 1)},        // shared, one-token passes
		{Context: randIDs(r, 7, 97), Continuations: conts(5)},              // one continuation: a row
		{Context: randIDs(r, 4, 97), Continuations: conts(4, 2)},           // shared, context = longest
	}
	want, err := (&ModelLM{M: m}).Score(reqs)
	if err != nil {
		t.Fatal(err)
	}
	dev := newDeviceLM(t, m, DeviceOptions{Rows: 2})
	got, err := dev.Score(reqs)
	if err != nil {
		t.Fatal(err)
	}
	worst := compareScores(t, "shared", got, want)
	t.Logf("max |Δ log p| %.3g, %d of %d requests over a shared context", worst, dev.sharedReqs, len(reqs))
	if worst > 1e-4 {
		t.Errorf("max |Δ log p| %.3g > 1e-4", worst)
	}
	if dev.sharedReqs != 3 {
		t.Errorf("%d requests shared their context, want 3", dev.sharedReqs)
	}
}

// Greedy generation token for token as ModelLM's (KV cache), with the same
// EOS and stop rules.
func TestGenerateDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Llama, 21)
	r := rand.New(rand.NewPCG(7, 8))
	ctxs := [][]int{randIDs(r, 1, 97), randIDs(r, 9, 97), randIDs(r, 17, 97)}
	// Take the 4th token the CPU generates from ctxs[1] as EOS, so one
	// case stops on it.
	plain, err := (&ModelLM{M: m, EOS: []int{-1}}).Generate(ctxs[1], 8, nil)
	if err != nil || len(plain) < 4 {
		t.Fatalf("reference generation %v, %v", plain, err)
	}
	stopAt3 := func(gen []int) bool { return len(gen) >= 3 }
	for _, c := range []struct {
		eos    []int
		stop   func([]int) bool
		maxNew int
		reason string
	}{
		{[]int{-1}, nil, 8, "no EOS: maxNew tokens"},
		{[]int{plain[3]}, nil, 8, "stops before an EOS token (not returned)"},
		{[]int{-1}, stopAt3, 8, "the stop function ends it"},
		{[]int{-1}, nil, 1, "one new token"},
	} {
		ref := &ModelLM{M: m, EOS: c.eos}
		dev := newDeviceLM(t, m, DeviceOptions{EOS: c.eos})
		for i, ctx := range ctxs {
			want, err := ref.Generate(ctx, c.maxNew, c.stop)
			if err != nil {
				t.Fatal(err)
			}
			got, err := dev.Generate(ctx, c.maxNew, c.stop)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: context %d: device %v, CPU %v", c.reason, i, got, want)
			}
		}
	}
}

// The cached decoding path (one token a step over a device KV cache) and
// the full pass per token give the same tokens, and the CPU's too for f32
// weights: nemotron, llama, mistral with a sliding window shorter than the
// sequence, and llama with bf16-only weights (checked against the device's
// full path, bf16 products differing from the CPU's f32). 32 new tokens
// after a 9-token context (12 with -short on the emulator); logs the positions forwarded and the wall time
// of each path (a measure, not asserted).
func TestGenerateCachedDeviceCUDA(t *testing.T) {
	for _, c := range []struct {
		name   string
		fam    model.Family
		window int
		bf16   bool
		reason string
	}{
		{"nemotron", model.Nemotron, 0, false, "LayerNorm1P, partial RoPE"},
		{"llama", model.Llama, 0, false, "RMSNorm, SwiGLU, GQA"},
		{"mistral-window", model.Mistral, 6, false, "window 6 < 41 positions: the cache masks as the full pass"},
		{"llama-bf16", model.Llama, 0, true, "bf16-only weights (DeviceOptions.BF16)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := model.SyntheticConfig(c.fam, 2, 48, 4, 2, 96, 97)
			if err != nil {
				t.Fatal(err)
			}
			cfg.SlidingWindow = c.window
			src := model.NewRandomSource(cfg, model.F32, 23)
			src.Std = 0.3
			m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
			if err != nil {
				t.Fatal(err)
			}
			maxNew := 32
			if testing.Short() && cuda.Emulated() {
				if c.bf16 {
					t.Skip("-short on the emulator: the f32 cases only")
				}
				maxNew = 12
			}
			ctx := randIDs(rand.New(rand.NewPCG(3, 4)), 9, 97)
			eos := []int{-1} // never: all 32 tokens
			dev := newDeviceLM(t, m, DeviceOptions{EOS: eos, BF16: c.bf16})
			start := time.Now()
			got, err := dev.Generate(ctx, maxNew, nil)
			if err != nil {
				t.Fatal(err)
			}
			cachedTime, cachedTok := time.Since(start), dev.forwarded
			if dev.kc == nil {
				t.Fatal("Generate ran without a KV cache")
			}
			dev.forwarded = 0
			seq, _ := toIDs32(ctx, 97)
			start = time.Now()
			full, err := dev.generateFull(seq, maxNew, nil)
			if err != nil {
				t.Fatal(err)
			}
			fullTime, fullTok := time.Since(start), dev.forwarded
			if !slices.Equal(got, full) {
				t.Errorf("cached %v\nfull   %v", got, full)
			}
			if !c.bf16 {
				want, err := (&ModelLM{M: m, EOS: eos}).Generate(ctx, maxNew, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("device %v\nCPU    %v", got, want)
				}
			}
			if len(got) != maxNew {
				t.Errorf("%d tokens, want %d", len(got), maxNew)
			}
			if want := len(ctx) + maxNew - 1; cachedTok != want {
				t.Errorf("the cached path forwarded %d positions, want %d (context once, then one per token)", cachedTok, want)
			}
			t.Logf("%d new tokens after %d: positions forwarded cached %d vs full %d (%.1f×), emulator wall %v vs %v (%.1f×)",
				maxNew, len(ctx), cachedTok, fullTok, float64(fullTok)/float64(cachedTok),
				cachedTime.Round(time.Millisecond), fullTime.Round(time.Millisecond), fullTime.Seconds()/cachedTime.Seconds())
		})
	}
}

// A second generation reuses the cache when it fits (Reset), allocates a
// larger one when it does not, and the cache goes with a rebuilt model.
func TestGenerateCacheReuseDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Llama, 21)
	r := rand.New(rand.NewPCG(11, 12))
	dev := newDeviceLM(t, m, DeviceOptions{EOS: []int{-1}})
	ref := &ModelLM{M: m, EOS: []int{-1}}
	var prev *gpu.KVCache
	for i, c := range []struct {
		ctx, maxNew int
		reuse       bool
		reason      string
	}{
		{5, 4, false, "first call: a new cache of 8 positions"},
		{3, 3, true, "5 positions fit: the same cache, reset"},
		{6, 10, false, "15 positions: a larger cache"},
		{12, 1, false, "12 positions would fit the 16-position cache, but a 12-token context rebuilds the 8-token device model: a new cache on it"},
	} {
		ctx := randIDs(r, c.ctx, 97)
		want, err := ref.Generate(ctx, c.maxNew, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dev.Generate(ctx, c.maxNew, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("call %d (%s): device %v, CPU %v", i, c.reason, got, want)
		}
		if (dev.kc == prev) != c.reuse {
			t.Errorf("call %d (%s): cache reused %v", i, c.reason, dev.kc == prev)
		}
		prev = dev.kc
	}
}

// Rolling-window perplexity (lm-eval windows, a stride below the window)
// through both LMs: the log-likelihood sums agree to 1e-5 relative.
func TestPerplexityDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Nemotron, 31)
	r := rand.New(rand.NewPCG(9, 10))
	docs := [][]int{randIDs(r, 50, 97), randIDs(r, 7, 97), randIDs(r, 23, 97)}
	o := PPLOptions{SeqLen: 16, Stride: 6, Batch: 8}
	want, err := TokenPerplexity(&ModelLM{M: m}, docs, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := TokenPerplexity(newDeviceLM(t, m, DeviceOptions{Seq: 16}), docs, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	rel := math.Abs(got.LogLik-want.LogLik) / math.Abs(want.LogLik)
	t.Logf("token ppl: %d windows, loglik device %.6f CPU %.6f (rel %.2g)", got.Windows, got.LogLik, want.LogLik, rel)
	if got.Tokens != want.Tokens || got.Windows != want.Windows || rel > 1e-5 {
		t.Errorf("device %+v\nCPU %+v", got, want)
	}

	// Text through the golden tiny llama and its tokenizer.
	lm, tok := loadTiny(t)
	doc := "The cat sat on the mat. It was a warm day, and the cat slept in the sun. Then it woke."
	to := PPLOptions{SeqLen: 24, Batch: 4}
	tw, err := TextPerplexity(lm, Encoder{Tok: tok}, []string{doc}, to)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := TextPerplexity(newDeviceLM(t, lm.M, DeviceOptions{}), Encoder{Tok: tok}, []string{doc}, to)
	if err != nil {
		t.Fatal(err)
	}
	rel = math.Abs(tg.LogLik-tw.LogLik) / math.Abs(tw.LogLik)
	t.Logf("text ppl: %d windows, bits/byte device %.6f CPU %.6f (loglik rel %.2g)", tg.Windows, tg.BitsPerByte, tw.BitsPerByte, rel)
	if tg.Tokens != tw.Tokens || tg.Windows != tw.Windows || rel > 1e-5 {
		t.Errorf("device %+v\nCPU %+v", tg, tw)
	}
}

// eval nll's device path: per-position NLL and the logits of one pass
// against model.SequenceNLL over the CPU forward.
func TestSequenceNLLDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Llama, 41)
	ids := randIDs(rand.New(rand.NewPCG(1, 1)), 19, 97)
	lg, err := m.Forward([][]int{ids}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := model.SequenceNLL(lg, ids)
	if err != nil {
		t.Fatal(err)
	}
	dev := newDeviceLM(t, m, DeviceOptions{Rows: 1, Seq: len(ids)})
	got, dlg, err := dev.SequenceNLL(ids, true)
	if err != nil {
		t.Fatal(err)
	}
	var dn, dl float64
	for i := range want {
		dn = max(dn, math.Abs(got[i]-want[i]))
	}
	for i := range lg {
		dl = max(dl, math.Abs(float64(dlg[i]-lg[i])))
	}
	t.Logf("nll: max |Δ| %.3g, logits max |Δ| %.3g", dn, dl)
	if len(got) != len(want) || len(dlg) != len(lg) || dn > 1e-4 || dl > 1e-3 {
		t.Errorf("nll max diff %.3g (%d vs %d values), logits max diff %.3g", dn, len(got), len(want), dl)
	}
	if _, _, err := dev.SequenceNLL([]int{1, 97}, false); err == nil {
		t.Error("an id outside the vocabulary was accepted")
	}
}

// Decode (the generate command's decoding) against model.Model.Generate on
// the same weights, TF32 off: greedy token for token, and sampled with the
// same seed the same draws (host model.SampleToken over the downloaded
// last-row logits, which match the CPU's to ~1e-6: far from moving a draw
// across a cumulative-probability boundary on these seeds). The EOS token
// is returned with StoppedOnEOS, OnToken sees every token and can stop it,
// as on the CPU.
func TestDecodeDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Nemotron, 31)
	ctx := randIDs(rand.New(rand.NewPCG(5, 6)), 7, 97)
	const maxNew = 10
	plain, err := m.Generate(ctx, model.GenerateOptions{MaxNewTokens: maxNew, EOS: []int{}})
	if err != nil || len(plain.Tokens) != maxNew {
		t.Fatalf("reference generation %v, %v", plain, err)
	}
	var seen []int
	stopAfter4 := func(id int) bool { seen = append(seen, id); return len(seen) < 4 }
	dev := newDeviceLM(t, m, DeviceOptions{})
	for _, c := range []struct {
		opt    model.GenerateOptions
		reason string
	}{
		{model.GenerateOptions{EOS: []int{}}, "greedy, no EOS: maxNew tokens"},
		{model.GenerateOptions{EOS: []int{plain.Tokens[4]}}, "greedy, stops on an EOS token (returned)"},
		{model.GenerateOptions{EOS: []int{}, OnToken: stopAfter4}, "greedy, OnToken stops it after 4"},
		{model.GenerateOptions{EOS: []int{}, Temperature: 1, Seed: 1}, "sampled, temperature 1"},
		{model.GenerateOptions{EOS: []int{}, Temperature: 0.7, TopK: 20, Seed: 2}, "sampled, top-k"},
		{model.GenerateOptions{EOS: []int{}, Temperature: 1.3, TopP: 0.9, Seed: 3}, "sampled, top-p"},
		{model.GenerateOptions{EOS: []int{}, Temperature: 0.9, TopK: 40, TopP: 0.8, Seed: 4}, "sampled, top-k and top-p"},
	} {
		c.opt.MaxNewTokens = maxNew
		seen = nil
		want, err := m.Generate(ctx, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		wantSeen := seen
		seen = nil
		got, err := dev.Decode(ctx, c.opt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Tokens, want.Tokens) || got.StoppedOnEOS != want.StoppedOnEOS {
			t.Errorf("%s: device %v (EOS %v), CPU %v (EOS %v)", c.reason, got.Tokens, got.StoppedOnEOS, want.Tokens, want.StoppedOnEOS)
		}
		if c.opt.OnToken != nil && !slices.Equal(seen, wantSeen) {
			t.Errorf("%s: OnToken saw %v on the device, %v on the CPU", c.reason, seen, wantSeen)
		}
	}
	// Sampling is not greedy: at temperature 1 some seed leaves the
	// greedy path (else the sampled cases above would prove nothing).
	differs := false
	for seed := int64(1); seed <= 4 && !differs; seed++ {
		got, err := dev.Decode(ctx, model.GenerateOptions{MaxNewTokens: maxNew, EOS: []int{}, Temperature: 1, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		differs = !slices.Equal(got.Tokens, plain.Tokens)
	}
	if !differs {
		t.Error("sampled at temperature 1 with seeds 1-4, the device always produced the greedy tokens")
	}
	for _, bad := range []struct {
		prompt []int
		opt    model.GenerateOptions
		reason string
	}{
		{nil, model.GenerateOptions{MaxNewTokens: 1}, "empty prompt"},
		{ctx, model.GenerateOptions{}, "no new tokens"},
		{ctx, model.GenerateOptions{MaxNewTokens: 1, Temperature: -1}, "negative temperature"},
		{ctx, model.GenerateOptions{MaxNewTokens: 1, TopK: -1}, "negative top-k"},
		{[]int{1, 97}, model.GenerateOptions{MaxNewTokens: 1}, "id outside the vocabulary"},
	} {
		if _, err := dev.Decode(bad.prompt, bad.opt); err == nil {
			t.Errorf("%s: no error", bad.reason)
		}
	}
	if dev.kc == nil {
		t.Error("Decode ran without a KV cache")
	}
}
