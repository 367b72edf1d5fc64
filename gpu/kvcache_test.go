//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// cachedPair is a model that decodes with a KV cache (its Seq shorter than
// the sequence: the cache's positions go past it) and a reference model on
// the same weights that runs the whole prefix with Infer.
func cachedPair(t *testing.T, c inferCase, batch, seq, full int) (*model.Config, *gpu.Model, *gpu.Model) {
	t.Helper()
	cfg, src, gm := inferModel(t, c, batch, seq)
	ref, err := gpu.NewModelOpts(dev, cfg, src, gpu.Options{Batch: batch, Seq: full, WeightsBF16: c.wbf16})
	must(t, err)
	t.Cleanup(ref.Free)
	return cfg, gm, ref
}

// fullLastRows runs ref over seqs[b][:n] and returns the logits of the
// last k positions of each row, [B·k, V].
func fullLastRows(t *testing.T, ref *gpu.Model, seqs [][]int32, n, k, V int) []float32 {
	t.Helper()
	ids := make([][]int32, len(seqs))
	for b := range seqs {
		ids[b] = seqs[b][:n]
	}
	must(t, ref.SetInputs(ids, nil))
	must(t, ref.Infer(nil))
	all := make([]float32, len(seqs)*n*V)
	must(t, dev.Download(all, ref.Logits().Slice(0, len(all))))
	var out []float32
	for b := range seqs {
		out = append(out, all[(b*n+n-k)*V:(b*n+n)*V]...)
	}
	return out
}

// cachedRows feeds seqs[b][from:to] to the cache and returns the new rows'
// logits, [B·(to−from), V].
func cachedRows(t *testing.T, gm *gpu.Model, kc *gpu.KVCache, seqs [][]int32, from, to, V int) []float32 {
	t.Helper()
	ids := make([][]int32, len(seqs))
	for b := range seqs {
		ids[b] = seqs[b][from:to]
	}
	must(t, gm.SetInputs(ids, nil))
	must(t, gm.InferCached(kc, nil))
	if kc.Len() != to {
		t.Fatalf("after feeding positions %d…%d the cache holds %d", from, to-1, kc.Len())
	}
	out := make([]float32, len(seqs)*(to-from)*V)
	must(t, dev.Download(out, gm.Logits().Slice(0, len(out))))
	return out
}

// Decoding with the KV cache gives, at every step, the logits of a full
// Infer over the same prefix (TF32 off): a 5-token prompt for 2 rows, then
// one token a step, one 2-token step (several queries over a filled
// cache), up to 14 positions on a model whose Seq is 6 (positions past
// Seq use the cache's own RoPE tables). Then Truncate back to the prompt
// and a different continuation, and Reset with the prompt again (the same
// logits as the first time, bit for bit).
func TestInferCachedMatchesFullInfer(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	for _, c := range []inferCase{
		{name: "nemotron", fam: model.Nemotron, tol: 1e-4, reason: "LayerNorm1P, partial RoPE (rotary dim < head dim)"},
		{name: "llama", fam: model.Llama, tol: 1e-4, reason: "RMSNorm, SwiGLU, full RoPE, GQA"},
		{name: "mistral-window", fam: model.Mistral, window: 4, tol: 1e-4,
			reason: "sliding window 4 < 14 positions: the cached queries see only the last 4 keys, as the full pass"},
		{name: "llama-refattn", fam: model.Llama, ref: true, tol: 1e-4,
			reason: "the prompt pass through the reference kernel too (AttnTC off)"},
		{name: "llama-wbf16", fam: model.Llama, wbf16: true, tol: 3e-2,
			reason: "bf16-only weights: the same bf16 products on both sides, the f32 stream rounded to bf16 may flip a last bit"},
		{name: "qwen3", fam: model.Qwen3, hd: 16, tol: 1e-4,
			reason: "q/k norms before RoPE at the cache's positions, on one new token a step"},
		{name: "qwen2-bias", fam: model.Qwen2, tol: 1e-4, reason: "q/k/v biases on the cached keys and values"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && cuda.Emulated() && c.wbf16 {
				t.Skip("-short on the emulator: the f32 cases only")
			}
			const B, Seq, Full, P = 2, 6, 14, 5
			cfg, gm, ref := cachedPair(t, c, B, Seq, Full)
			V := cfg.VocabSize
			seqs, _ := randRows(B, Full, V, 77)
			kc, err := gm.NewKVCache(B, Full)
			must(t, err)
			defer kc.Free()
			worst, maxAbs := 0.0, 0.0
			check := func(what string, got, want []float32) {
				t.Helper()
				d, scale := maxDiff(got, want)
				lim := c.tol * (1 + scale)
				worst, maxAbs = math.Max(worst, d/lim), math.Max(maxAbs, d)
				if !(d <= lim) {
					t.Errorf("%s: max diff %.3g (max |x| %.3g), allowed %.3g", what, d, scale, lim)
				}
			}
			prompt := cachedRows(t, gm, kc, seqs, 0, P, V)
			check("prompt", prompt, fullLastRows(t, ref, seqs, P, P, V))
			steps := [][2]int{{5, 6}, {6, 7}, {7, 9}, {9, 10}, {10, 11}, {11, 12}, {12, 13}, {13, 14}}
			for _, s := range steps {
				got := cachedRows(t, gm, kc, seqs, s[0], s[1], V)
				check(fmt.Sprintf("positions %d…%d", s[0], s[1]-1), got, fullLastRows(t, ref, seqs, s[1], s[1]-s[0], V))
			}
			// another continuation after the same prompt
			must(t, kc.Truncate(P))
			alt, _ := randRows(B, Full, V, 78)
			for b := range alt {
				copy(alt[b], seqs[b][:P])
			}
			cachedRows(t, gm, kc, alt, P, 8, V)
			got := cachedRows(t, gm, kc, alt, 8, 9, V)
			check("after Truncate", got, fullLastRows(t, ref, alt, 9, 1, V))
			kc.Reset()
			again := cachedRows(t, gm, kc, seqs, 0, P, V)
			if d, _ := maxDiff(again, prompt); d != 0 {
				t.Errorf("after Reset the prompt's logits differ from the first pass by %g", d)
			}
			t.Logf("max |diff| %.2g, largest %.3f of its tolerance %g·(1+max|x|), over %d steps", maxAbs, worst, c.tol, len(steps)+2)
		})
	}
}

// Hooks and skipped layers work on the cached rows: a decode step with
// layer 1 skipped matches a full Infer with the same skip, and the hooks
// see the new rows' shape (B'×1).
func TestInferCachedSkipAndHooks(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	const B, Seq, Full = 1, 8, 8
	cfg, gm, ref := cachedPair(t, inferCase{fam: model.Llama}, B, Seq, Full)
	V := cfg.VocabSize
	seqs, _ := randRows(B, Full, V, 5)
	kc, err := gm.NewKVCache(B, Full)
	must(t, err)
	defer kc.Free()
	skip := []int{1}
	must(t, gm.SetInputs([][]int32{seqs[0][:6]}, nil))
	must(t, gm.InferCached(kc, &gpu.InferOptions{Skip: skip}))
	must(t, gm.SetInputs([][]int32{seqs[0][6:7]}, nil))
	calls := 0
	hk := &gpu.Hooks{LayerOutput: func(l int, x cuda.Buf, b, tt int) error {
		calls++
		if l == 1 || b != 1 || tt != 1 || x.N != cfg.HiddenSize {
			t.Errorf("LayerOutput hook: layer %d, shape %d×%d, %d values", l, b, tt, x.N)
		}
		return nil
	}}
	must(t, gm.InferCached(kc, &gpu.InferOptions{Skip: skip, Hooks: hk}))
	if calls != cfg.NumLayers-1 {
		t.Errorf("%d LayerOutput calls, want %d", calls, cfg.NumLayers-1)
	}
	got := make([]float32, V)
	must(t, dev.Download(got, gm.Logits().Slice(0, V)))
	must(t, ref.SetInputs([][]int32{seqs[0][:7]}, nil))
	must(t, ref.Infer(&gpu.InferOptions{Skip: skip}))
	all := make([]float32, 7*V)
	must(t, dev.Download(all, ref.Logits().Slice(0, 7*V)))
	if d, scale := maxDiff(got, all[6*V:]); !(d <= 1e-4*(1+scale)) {
		t.Errorf("skip: cached step differs from the full pass by %g (max |x| %g)", d, scale)
	}
}

// Misuse is a clear error: a full cache (and Len stays), more rows than
// the cache holds, a cache of another model, a freed cache, bad sizes, a
// Truncate past Len.
func TestInferCachedErrors(t *testing.T) {
	const B, Seq = 2, 4
	_, gm, other := cachedPair(t, inferCase{fam: model.Nemotron}, B, Seq, Seq)
	kc, err := gm.NewKVCache(1, 5)
	must(t, err)
	defer kc.Free()
	row := func(n int) [][]int32 { return [][]int32{make([]int32, n)} }
	must(t, gm.SetInputs(row(3), nil))
	must(t, gm.InferCached(kc, nil))
	must(t, gm.SetInputs(row(3), nil))
	if err := gm.InferCached(kc, nil); err == nil || !strings.Contains(err.Error(), "kv cache full: 3 positions held + 3 new exceed its capacity 5") {
		t.Errorf("overflow: error %v", err)
	}
	if kc.Len() != 3 {
		t.Errorf("a refused call moved Len to %d", kc.Len())
	}
	must(t, gm.SetInputs([][]int32{{1}, {2}}, nil))
	if err := gm.InferCached(kc, nil); err == nil || !strings.Contains(err.Error(), "the cache holds 1") {
		t.Errorf("2 rows into a 1-row cache: error %v", err)
	}
	must(t, other.SetInputs(row(1), nil))
	if err := other.InferCached(kc, nil); err == nil || !strings.Contains(err.Error(), "another model") {
		t.Errorf("another model's cache: error %v", err)
	}
	if err := kc.Truncate(4); err == nil || !strings.Contains(err.Error(), "it holds 3") {
		t.Errorf("Truncate(4) of 3: error %v", err)
	}
	for _, s := range [][2]int{{0, 4}, {1, 0}, {3, 4}} {
		if _, err := gm.NewKVCache(s[0], s[1]); err == nil {
			t.Errorf("NewKVCache(%d, %d): no error", s[0], s[1])
		}
	}
	kc2, err := gm.NewKVCache(1, 2)
	must(t, err)
	kc2.Free()
	must(t, gm.SetInputs(row(1), nil))
	if err := gm.InferCached(kc2, nil); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("freed cache: error %v", err)
	}
}

// A context run once in row 0 and copied to rows 1 and 2 (CopyRow) serves
// three different continuations in one pass: each row's logits equal a
// full Infer over context+continuation.
func TestInferCachedCopyRow(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	const B, Seq, Full, P = 3, 8, 8, 5
	cfg, gm, ref := cachedPair(t, inferCase{fam: model.Mistral, window: 3}, B, Seq, Full)
	V := cfg.VocabSize
	seqs, _ := randRows(B, Full, V, 91)
	for b := 1; b < B; b++ {
		copy(seqs[b], seqs[0][:P])
	}
	kc, err := gm.NewKVCache(B, Full)
	must(t, err)
	defer kc.Free()
	must(t, gm.SetInputs([][]int32{seqs[0][:P]}, nil))
	must(t, gm.InferCached(kc, nil))
	for b := 1; b < B; b++ {
		must(t, kc.CopyRow(b, 0))
	}
	got := cachedRows(t, gm, kc, seqs, P, Full, V)
	want := fullLastRows(t, ref, seqs, Full, Full-P, V)
	if d, scale := maxDiff(got, want); !(d <= 1e-4*(1+scale)) {
		t.Errorf("continuations after a copied context differ from full passes by %g (max |x| %g)", d, scale)
	}
	if err := kc.CopyRow(3, 0); err == nil || !strings.Contains(err.Error(), "copy row 0 to row 3 of 3") {
		t.Errorf("CopyRow(3, 0): error %v", err)
	}
}
