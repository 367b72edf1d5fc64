//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// inferCase is one tiny random model for the Infer tests.
type inferCase struct {
	name   string
	fam    model.Family
	window int  // sliding window (mistral), 0 = none
	bf16   bool // EnableBF16
	wbf16  bool // Options.WeightsBF16: bf16-only linear weights
	tied   bool // tied embeddings (the head is the embedding table)
	bias   bool // attention_bias and mlp_bias (every projection biased)
	hd     int  // explicit head_dim (0: the family's default)
	train  bool // a training model (Infer in layer 0's buffers)
	ref    bool // the reference attention kernel (AttnTC off)
	skip   []int
	tol    float64 // |got − want| ≤ tol·(1 + max |want| of the tensor)
	reason string
}

var inferCases = []inferCase{
	{name: "nemotron", fam: model.Nemotron, tol: 1e-4,
		reason: "LayerNorm1P with bias, relu², partial RoPE, ungated MLP (MLPPre = up_proj)"},
	{name: "llama-skip", fam: model.Llama, skip: []int{1}, tol: 1e-4,
		reason: "RMSNorm, SwiGLU (MLPPre = gate block of the split layout), layer 1 dropped: no hooks for it"},
	{name: "mistral-window", fam: model.Mistral, window: 5, skip: []int{0, 2}, tol: 1e-4,
		reason: "sliding window shorter than T; first and last layers dropped"},
	{name: "llama-refattn", fam: model.Llama, ref: true, skip: []int{2}, tol: 1e-4,
		reason: "the reference attention kernel, without a score buffer"},
	{name: "nemotron-train", fam: model.Nemotron, train: true, skip: []int{2}, tol: 1e-4,
		reason: "Infer on a training model reuses layer 0's buffers and xs[0], xs[1]"},
	{name: "llama-bf16", fam: model.Llama, bf16: true, tol: 3e-2,
		reason: "bf16 linear-layer inputs and weights (8 mantissa bits): looser"},
	{name: "nemotron-bf16-train", fam: model.Nemotron, bf16: true, train: true, tol: 3e-2,
		reason: "bf16 in a training model's buffers"},
	{name: "llama-wbf16", fam: model.Llama, wbf16: true, skip: []int{1}, tol: 3e-2,
		reason: "bf16-only linear weights (no f32 copy), RMSNorm/SwiGLU: EnableBF16's products, its tolerance"},
	{name: "nemotron-wbf16-tied", fam: model.Nemotron, wbf16: true, tied: true, tol: 3e-2,
		reason: "bf16-only weights with a tied head: f32 embedding for the lookup, its bf16 copy for the logits"},
	{name: "qwen2-tied", fam: model.Qwen2, tied: true, tol: 1e-4,
		reason: "q/k/v biases (o_proj without), tied head"},
	{name: "qwen3-skip", fam: model.Qwen3, hd: 16, skip: []int{1}, tol: 1e-4,
		reason: "q_norm/k_norm over head_dim 16 ≠ hidden/heads at smaller shapes than the model's (prefixes of the norm's gathers)"},
	{name: "llama-bias", fam: model.Llama, bias: true, tol: 1e-4,
		reason: "attention_bias and mlp_bias: the MLPPre hook sees the gate's bias, the split layout biased block by block"},
	{name: "qwen3-wbf16", fam: model.Qwen3, hd: 16, wbf16: true, tol: 3e-2,
		reason: "bf16-only matrices; the q/k norm weights stay f32"},
}

// hookLog records hook buffers by "name/layer".
type hookLog map[string][]float32

func key(name string, l int) string { return fmt.Sprintf("%s/%d", name, l) }

func cpuHooks(log hookLog) *model.Hooks {
	rec := func(name string) model.Hook {
		return func(l, B, T int, x []float32) { log[key(name, l)] = slices.Clone(x) }
	}
	return &model.Hooks{LayerInput: rec("LayerInput"), AttnNorm: rec("AttnNorm"), AttnHeads: rec("AttnHeads"),
		MLPNorm: rec("MLPNorm"), MLPPre: rec("MLPPre"), MLPPost: rec("MLPPost"), LayerOutput: rec("LayerOutput")}
}

// gpuHooks downloads every hook's buffer; at LayerOutput it downloads the
// layer's LayerInput buffer again, which must be unchanged.
func gpuHooks(t *testing.T, log hookLog, wantB, wantT int) *gpu.Hooks {
	var in cuda.Buf
	rec := func(name string) func(int, cuda.Buf, int, int) error {
		return func(l int, x cuda.Buf, B, T int) error {
			if B != wantB || T != wantT {
				t.Errorf("%s hook of layer %d: shape %d×%d, want %d×%d", name, l, B, T, wantB, wantT)
			}
			if x.N%(B*T) != 0 {
				t.Errorf("%s hook of layer %d: %d values are not [%d, width]", name, l, x.N, B*T)
			}
			host := make([]float32, x.N)
			if err := dev.Download(host, x); err != nil {
				return err
			}
			log[key(name, l)] = host
			switch name {
			case "LayerInput":
				in = x
			case "LayerOutput":
				again := make([]float32, in.N)
				if err := dev.Download(again, in); err != nil {
					return err
				}
				if !slices.Equal(again, log[key("LayerInput", l)]) {
					t.Errorf("layer %d: the LayerInput buffer changed before LayerOutput", l)
				}
			}
			return nil
		}
	}
	return &gpu.Hooks{LayerInput: rec("LayerInput"), AttnNorm: rec("AttnNorm"), AttnHeads: rec("AttnHeads"),
		MLPNorm: rec("MLPNorm"), MLPPre: rec("MLPPre"), MLPPost: rec("MLPPost"), LayerOutput: rec("LayerOutput")}
}

// maxDiff is max |a−b| and max |b|; a length mismatch is reported as +Inf.
func maxDiff(a, b []float32) (d, scale float64) {
	if len(a) != len(b) {
		return math.Inf(1), 0
	}
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return d, scale
}

func inferModel(t *testing.T, c inferCase, batch, seq int) (*model.Config, *model.RandomSource, *gpu.Model) {
	t.Helper()
	cfg, err := model.SyntheticConfig(c.fam, 3, 32, 4, 2, 64, 97)
	must(t, err)
	cfg.SlidingWindow = c.window
	cfg.TieWordEmbeddings = c.tied
	cfg.AttentionBias, cfg.MLPBias = c.bias, c.bias
	if c.hd > 0 {
		cfg.HeadDim = c.hd
	}
	src := model.NewRandomSource(cfg, model.F32, 7)
	src.Std = 0.1 // larger than the 0.02 default so every layer moves the stream
	gm, err := gpu.NewModelOpts(dev, cfg, src, gpu.Options{Batch: batch, Seq: seq, Train: c.train, WeightsBF16: c.wbf16})
	must(t, err)
	t.Cleanup(gm.Free)
	gm.AttnTC = !c.ref
	if c.bf16 {
		must(t, gm.EnableBF16())
	}
	return cfg, src, gm
}

// randRows returns B rows of T ids in [0, V) and, as targets, the next
// ids with -1 at the last position of odd rows (padding).
func randRows(B, T, V int, seed uint64) (ids, targets [][]int32) {
	r := rand.New(rand.NewPCG(seed, 9))
	for b := 0; b < B; b++ {
		row, tg := make([]int32, T), make([]int32, T)
		for i := range row {
			row[i], tg[i] = int32(r.IntN(V)), int32(r.IntN(V))
		}
		if b%2 == 1 {
			tg[T-1] = -1
		}
		ids, targets = append(ids, row), append(targets, tg)
	}
	return ids, targets
}

func toInts(rows [][]int32) [][]int {
	out := make([][]int, len(rows))
	for b, r := range rows {
		for _, v := range r {
			out[b] = append(out[b], int(v))
		}
	}
	return out
}

// Infer at shapes smaller than the model's (B' < Batch, T < Seq, then a
// second shape on the same model) against model.Model.Forward on the same
// weights, TF32 off: logits, every hook's buffer (and that skipped layers
// call none), and TokenLogProbs against a float64 log-softmax of the CPU
// logits. Tolerances per case (inferCases).
func TestInferMatchesCPU(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	for _, c := range inferCases {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && cuda.Emulated() && (c.bf16 || c.wbf16 || c.train) {
				t.Skip("-short on the emulator: the f32 inference cases only")
			}
			const Batch, Seq = 3, 16
			cfg, src, gm := inferModel(t, c, Batch, Seq)
			cpu, err := model.New(cfg, src, model.Options{})
			must(t, err)
			for si, shape := range [][2]int{{2, 11}, {3, 7}} {
				B, T := shape[0], shape[1]
				ids, targets := randRows(B, T, cfg.VocabSize, uint64(30+si))
				wantHooks, gotHooks := hookLog{}, hookLog{}
				want, err := cpu.Forward(toInts(ids), &model.ForwardOptions{SkipLayers: c.skip, Hooks: cpuHooks(wantHooks)})
				must(t, err)
				must(t, gm.SetInputs(ids, targets))
				if b, tt := gm.Active(); b != B || tt != T {
					t.Fatalf("Active() = %d×%d, want %d×%d", b, tt, B, T)
				}
				must(t, gm.Infer(&gpu.InferOptions{Skip: c.skip, Hooks: gpuHooks(t, gotHooks, B, T)}))
				got := make([]float32, len(want))
				must(t, dev.Download(got, gm.Logits()))
				worst := 0.0 // largest diff relative to its tolerance
				var logitDiff, hookDiff, logpDiff float64
				check := func(what string, a, b []float32) {
					d, scale := maxDiff(a, b)
					switch {
					case what == "logits":
						logitDiff = d
					case what == "TokenLogProbs":
						logpDiff = d
					default:
						hookDiff = math.Max(hookDiff, d)
					}
					lim := c.tol * (1 + scale)
					worst = math.Max(worst, d/lim)
					if !(d <= lim) {
						t.Errorf("shape %d×%d: %s: max diff %.3g (max |x| %.3g), allowed %.3g", B, T, what, d, scale, lim)
					}
				}
				check("logits", got, want)
				if len(gotHooks) != len(wantHooks) {
					t.Errorf("shape %d×%d: %d hook calls, CPU %d", B, T, len(gotHooks), len(wantHooks))
				}
				for k, w := range wantHooks {
					g, ok := gotHooks[k]
					if !ok {
						t.Errorf("shape %d×%d: no %s hook call", B, T, k)
						continue
					}
					check(k, g, w)
				}
				for _, l := range c.skip {
					for k := range gotHooks {
						if strings.HasSuffix(k, fmt.Sprintf("/%d", l)) {
							t.Errorf("hook %s called for skipped layer %d", k, l)
						}
					}
				}
				logp, argmax, err := gm.TokenLogProbs()
				must(t, err)
				if len(logp) != B*T || len(argmax) != B*T {
					t.Fatalf("TokenLogProbs: %d/%d values, want %d", len(logp), len(argmax), B*T)
				}
				wantLogp, wantArg := make([]float32, B*T), make([]int32, B*T)
				V := cfg.VocabSize
				for r := range B * T {
					row := want[r*V : (r+1)*V]
					best := 0
					for i, v := range row {
						if v > row[best] {
							best = i
						}
					}
					wantArg[r] = int32(best)
					if tg := targets[r/T][r%T]; tg >= 0 {
						var s float64
						for _, v := range row {
							s += math.Exp(float64(v - row[best]))
						}
						wantLogp[r] = float32(float64(row[tg]-row[best]) - math.Log(s))
					}
					// near-ties may flip with rounding: accept any logit within tolerance of the max
					if g := argmax[r]; g != wantArg[r] && (g < 0 || int(g) >= V || float64(row[best]-row[g]) > c.tol*(1+math.Abs(float64(row[best])))) {
						t.Errorf("shape %d×%d row %d: argmax %d, CPU %d", B, T, r, g, wantArg[r])
					}
				}
				check("TokenLogProbs", logp, wantLogp)
				for r := range B * T {
					if targets[r/T][r%T] < 0 && logp[r] != 0 {
						t.Errorf("row %d has no target but log p %v", r, logp[r])
					}
				}
				t.Logf("shape %d×%d: max |diff| logits %.2g, hooks (%d) %.2g, log p %.2g; largest %.2f of its tolerance %g·(1+max|x|)",
					B, T, logitDiff, len(gotHooks), hookDiff, logpDiff, worst, c.tol)
			}
		})
	}
}

// NoLogits stops after the layers (the last LayerOutput equals the CPU's)
// and leaves the logits buffer untouched; a full-shape Forward after
// SetBatch on an inference model still matches Infer at that shape.
func TestInferNoLogitsAndForward(t *testing.T) {
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	c := inferCase{fam: model.Llama}
	const Batch, Seq = 2, 8
	cfg, _, gm := inferModel(t, c, Batch, Seq)
	V := cfg.VocabSize
	tok := batch(Batch, Seq, V, 41)
	must(t, gm.SetBatch(tok))
	if b, tt := gm.Active(); b != Batch || tt != Seq {
		t.Fatalf("after SetBatch Active() = %d×%d, want full %d×%d", b, tt, Batch, Seq)
	}
	must(t, gm.Forward())
	full := make([]float32, Batch*Seq*V)
	must(t, dev.Download(full, gm.Logits()))

	ids := make([][]int32, Batch)
	for b := range ids {
		ids[b] = tok[b][:Seq]
	}
	must(t, gm.SetInputs(ids, nil))
	var last []float32
	hk := &gpu.Hooks{LayerOutput: func(l int, x cuda.Buf, B, T int) error {
		last = make([]float32, x.N)
		return dev.Download(last, x)
	}}
	must(t, gm.Infer(&gpu.InferOptions{Hooks: hk, NoLogits: true}))
	after := make([]float32, len(full))
	must(t, dev.Download(after, gm.Logits()))
	if !slices.Equal(after, full) {
		t.Errorf("Infer with NoLogits changed the logits buffer")
	}
	must(t, gm.Infer(nil))
	must(t, dev.Download(after, gm.Logits()))
	if d, _ := maxDiff(after, full); d != 0 {
		t.Errorf("Infer on the SetInputs batch differs from Forward on the same SetBatch batch by %g", d)
	}
	if len(last) != Batch*Seq*cfg.HiddenSize {
		t.Fatalf("last LayerOutput has %d values, want %d", len(last), Batch*Seq*cfg.HiddenSize)
	}
	// no targets: every log p is 0, the argmax still comes
	logp, argmax, err := gm.TokenLogProbs()
	must(t, err)
	for r := range logp {
		if logp[r] != 0 || argmax[r] < 0 || int(argmax[r]) >= V {
			t.Fatalf("row %d without target: log p %v, argmax %d", r, logp[r], argmax[r])
		}
	}
}

var errStop = errors.New("stop here")

// Bad inputs and options give errors naming what is wrong; a hook's error
// aborts Infer and comes back wrapped.
func TestInferErrors(t *testing.T) {
	const Batch, Seq = 2, 6
	_, _, gm := inferModel(t, inferCase{fam: model.Nemotron}, Batch, Seq)
	_, _, tm := inferModel(t, inferCase{fam: model.Nemotron, train: true}, Batch, Seq)
	row := func(n int, v int32) []int32 {
		r := make([]int32, n)
		for i := range r {
			r[i] = v
		}
		return r
	}
	for _, c := range []struct {
		name         string
		ids, targets [][]int32
		want         string
		reason       string
	}{
		{"empty", nil, nil, "input sequences", "no rows"},
		{"too-many-rows", [][]int32{row(3, 1), row(3, 1), row(3, 1)}, nil, "the model's batch", "B' > Batch"},
		{"too-long", [][]int32{row(Seq+1, 1)}, nil, "sequence length", "T > Seq"},
		{"ragged", [][]int32{row(3, 1), row(4, 1)}, nil, "equal lengths", "rows of different lengths"},
		{"bad-id", [][]int32{row(3, 97)}, nil, "outside the vocabulary", "id = V"},
		{"negative-id", [][]int32{row(3, -1)}, nil, "outside the vocabulary", "-1 is padding only for targets"},
		{"bad-target", [][]int32{row(3, 1)}, [][]int32{row(3, -2)}, "neither -1", "target below -1"},
		{"target-rows", [][]int32{row(3, 1)}, [][]int32{row(3, 1), row(3, 1)}, "target rows", "targets of another batch size"},
		{"target-length", [][]int32{row(3, 1)}, [][]int32{row(2, 1)}, "target row 0", "targets of another length"},
	} {
		err := gm.SetInputs(c.ids, c.targets)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s (%s): error %v, want one containing %q", c.name, c.reason, err, c.want)
		}
	}
	must(t, gm.SetInputs([][]int32{row(4, 3)}, nil))
	if err := gm.Infer(&gpu.InferOptions{Skip: []int{3}}); err == nil || !strings.Contains(err.Error(), "skip layer 3") {
		t.Errorf("skip of layer 3 of 3: error %v", err)
	}
	calls := 0
	hk := &gpu.Hooks{MLPPre: func(l int, x cuda.Buf, B, T int) error { calls++; return errStop }}
	if err := gm.Infer(&gpu.InferOptions{Hooks: hk}); !errors.Is(err, errStop) || calls != 1 || err.Error() != "layer 0 MLPPre hook: stop here" {
		t.Errorf("a hook's error: Infer returned %v after %d calls, want \"layer 0 MLPPre hook: stop here\" after 1", err, calls)
	}
	must(t, tm.SetInputs([][]int32{row(4, 3)}, nil))
	if err := tm.Forward(); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("Forward of a training model at a SetInputs shape: error %v", err)
	}
}

// An inference model's device memory does not grow with depth beyond the
// weights (one set of activations for all layers), while a training
// model's does by a whole layer's activations per layer.
func TestInferMemoryIndependentOfDepth(t *testing.T) {
	const Batch, Seq = 4, 64
	used := func(layers int, train bool) (bytes, weights int64) {
		cfg, err := model.SyntheticConfig(model.Llama, layers, 32, 4, 2, 64, 97)
		must(t, err)
		before := dev.Pool().InUse
		gm, err := gpu.NewModel(dev, cfg, model.NewRandomSource(cfg, model.F32, 1), Batch, Seq, train)
		must(t, err)
		defer gm.Free()
		return dev.Pool().InUse - before, 4 * int64(gm.NumParams())
	}
	for _, train := range []bool{false, true} {
		b2, w2 := used(2, train)
		b8, w8 := used(8, train)
		// the pool rounds the weight arena up to at most twice its size
		bound := 2 * (w8 - w2)
		t.Logf("train=%v: 2 layers %d bytes, 8 layers %d bytes (weights %d → %d)", train, b2, b8, w2, w8)
		if grew := b8 - b2; !train && grew > bound {
			t.Errorf("inference model: 6 more layers take %d more bytes, more than their weights (≤ %d)", grew, bound)
		} else if train && grew <= bound {
			t.Errorf("training model: 6 more layers take only %d more bytes (≤ %d): per-layer activations missing?", grew, bound)
		}
	}
}
