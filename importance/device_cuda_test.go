//go:build minitron_cuda || minitron_cudaemu

package importance

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

func randomSamples(n, T, vocab int, seed uint64) [][]int {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, T)
		for j := range out[i] {
			out[i][j] = r.IntN(vocab)
		}
	}
	return out
}

// maxDiff is max_i |got_i − want_i| / max_i |want_i|: the error relative to
// the vector's scale (a channel with a tiny score is compared at the
// scale of the big ones, which is what ranking them needs).
func maxDiff(got, want []float64) float64 {
	var scale, d float64
	for i := range want {
		scale = math.Max(scale, math.Abs(want[i]))
		d = math.Max(d, math.Abs(got[i]-want[i]))
	}
	if scale == 0 {
		return d
	}
	return d / scale
}

// deviceTol are the tolerances a device run is held to against the CPU.
type deviceTol struct {
	width float64 // heads, groups, neurons, channels: maxDiff per vector
	bi    float64 // Block Importance: absolute
	loss  float64 // base and drop losses: relative
}

// compareDevice runs Compute on the CPU and on the device with the same
// options and checks every score the CPU produced.
func compareDevice(t *testing.T, cfg *model.Config, std float64, samples [][]int, opt Options, tol deviceTol) {
	t.Helper()
	src := model.NewRandomSource(cfg, model.F32, 21)
	src.Std = std
	m, err := model.New(cfg, src, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var cpuCalls, devCalls []int64
	opt.Progress = func(done, total int64) { cpuCalls = append(cpuCalls, done, total) }
	want, err := Compute(context.Background(), m, samples, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Device = device.CUDA
	opt.Progress = func(done, total int64) { devCalls = append(devCalls, done, total) }
	got, err := Compute(context.Background(), m, samples, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(cpuCalls) == 0 || len(devCalls) != len(cpuCalls) || devCalls[len(devCalls)-1] != cpuCalls[len(cpuCalls)-1] {
		t.Errorf("progress: device %v, CPU %v", devCalls, cpuCalls)
	}
	if got.Data != want.Data || got.Shape != want.Shape || got.Aggregation != want.Aggregation || got.MLPPoint != want.MLPPoint {
		t.Errorf("metadata: device %+v %+v %v %q, CPU %+v %+v %v %q", got.Data, got.Shape, got.Aggregation, got.MLPPoint,
			want.Data, want.Shape, want.Aggregation, want.MLPPoint)
	}
	worst := map[string]float64{}
	check := func(kind string, l int, g, w []float64) {
		if len(g) != len(w) {
			t.Fatalf("%s layer %d: %d scores, CPU %d", kind, l, len(g), len(w))
		}
		d := maxDiff(g, w)
		worst[kind] = math.Max(worst[kind], d)
		if d > tol.width || math.IsNaN(d) {
			t.Errorf("%s layer %d: max diff %.3g > %.3g\n device %v\n CPU    %v", kind, l, d, tol.width, g, w)
		}
	}
	check("channels", -1, got.Channels, want.Channels)
	for l := range want.Layers {
		check("heads", l, got.Layers[l].Heads, want.Layers[l].Heads)
		check("groups", l, got.Layers[l].Groups, want.Layers[l].Groups)
		check("neurons", l, got.Layers[l].Neurons, want.Layers[l].Neurons)
	}
	if (got.Depth == nil) != (want.Depth == nil) {
		t.Fatalf("layer importance: device %+v, CPU %+v", got.Depth, want.Depth)
	}
	if w, g := want.Depth, got.Depth; w != nil {
		if len(g.BI) != len(w.BI) || len(g.DropLoss) != len(w.DropLoss) || len(g.Blocks) != len(w.Blocks) {
			t.Fatalf("layer importance: device %+v, CPU %+v", g, w)
		}
		for l := range w.BI {
			d := math.Abs(g.BI[l] - w.BI[l])
			worst["bi (abs)"] = math.Max(worst["bi (abs)"], d)
			if d > tol.bi || math.IsNaN(d) {
				t.Errorf("BI layer %d: device %v, CPU %v", l, g.BI[l], w.BI[l])
			}
		}
		rel := func(kind string, gv, wv float64) {
			d := math.Abs(gv-wv) / math.Abs(wv)
			worst[kind] = math.Max(worst[kind], d)
			if d > tol.loss || math.IsNaN(d) {
				t.Errorf("%s: device %v, CPU %v", kind, gv, wv)
			}
		}
		if len(w.DropLoss) > 0 {
			rel("loss (rel)", g.BaseLoss, w.BaseLoss)
			for l := range w.DropLoss {
				rel("loss (rel)", g.DropLoss[l], w.DropLoss[l])
			}
		}
		for i, wb := range w.Blocks {
			gb := g.Blocks[i]
			if gb.K != wb.K || gb.Start != wb.Start || gb.Metric != wb.Metric {
				t.Errorf("block %d: device %+v, CPU %+v", i, gb, wb)
			}
			if wb.Metric == "loss" {
				rel("loss (rel)", gb.Value, wb.Value)
			} else if d := math.Abs(gb.Value - wb.Value); d > float64(wb.K)*tol.bi {
				t.Errorf("block %d: device %+v, CPU %+v", i, gb, wb)
			}
		}
		if g.LossSamples != w.LossSamples || g.LossSeqLen != w.LossSeqLen {
			t.Errorf("loss data: device %d×%d, CPU %d×%d", g.LossSamples, g.LossSeqLen, w.LossSamples, w.LossSeqLen)
		}
	}
	t.Logf("max diffs: %v", worst)
}

// Device scores against the CPU's for every aggregation, both MLP hook
// points, Block Importance, the layer-drop losses and block search. With
// TF32 off the activations agree to float32 rounding: width scores to
// 1e-4 of each vector's largest score, BI to 1e-5 absolute, losses to 1e-5
// relative (the emulator measures ≤ 1e-6, 2e-8, 2e-8). TF32 products (the
// default on a GPU) are held to 3e-3 / 5e-4 / 5e-4 (emulator: 4e-4, 5e-5,
// 4e-5).
func TestComputeDeviceCUDA(t *testing.T) {
	exact := deviceTol{width: 1e-4, bi: 1e-5, loss: 1e-5}
	nemo, err := model.SyntheticConfig(model.Nemotron, 3, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	llama, err := model.SyntheticConfig(model.Llama, 2, 64, 4, 2, 96, 97)
	if err != nil {
		t.Fatal(err)
	}
	// the trained extras: q/k/v biases (qwen2), q/k norms over an explicit
	// head_dim (qwen3), every projection biased (llama attention_bias and
	// mlp_bias: the MLPPre hook sees the gate's bias)
	qwen2, err := model.SyntheticConfig(model.Qwen2, 2, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	qwen3, err := model.SyntheticConfig(model.Qwen3, 2, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	qwen3.HeadDim = 16
	biased, err := model.SyntheticConfig(model.Llama, 2, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	biased.AttentionBias, biased.MLPBias = true, true
	cases := []struct {
		name    string
		cfg     *model.Config
		samples [][]int
		opt     Options
		tol     deviceTol
		short   bool // also run with -short
		reason  string
	}{
		{"nemotron-l2-mean-post-bi-loss-blocks", nemo, randomSamples(5, 10, 97, 1),
			Options{Aggregation: DefaultAggregation, MLPPoint: MLPPost, Batch: 2, BI: true, Loss: true, LossSamples: 3, BlockK: []int{1, 2}, NoTF32: true},
			exact, true, "the paper's aggregation; LayerNorm1P, relu²; a last batch of 1 < --batch; block search by BI and loss"},
		{"llama-mean-l2-pre-bi-lossdata", llama, randomSamples(4, 8, 97, 2),
			Options{Aggregation: Aggregation{BatchMean, SeqL2}, MLPPoint: MLPPre, Batch: 3, BI: true, Loss: true,
				LossData: randomSamples(3, 12, 97, 3), BlockK: []int{1}, NoTF32: true},
			exact, false, "RMSNorm, SwiGLU gate before the activation; held-out loss samples longer than the calibration ones"},
		{"llama-var-var-post", llama, randomSamples(4, 9, 97, 4),
			Options{Aggregation: Aggregation{BatchVar, SeqVar}, MLPPoint: MLPPost, Batch: 2, NoTF32: true},
			exact, false, "variances over tokens and samples; SwiGLU act(gate)·up"},
		{"nemotron-l2-l2-pre-tf32", nemo, randomSamples(4, 10, 97, 5),
			Options{Aggregation: Aggregation{BatchL2, SeqL2}, MLPPoint: MLPPre, Batch: 2, BI: true, Loss: true, BlockK: []int{2}},
			deviceTol{width: 3e-3, bi: 5e-4, loss: 5e-4}, false, "TF32 products, as on a GPU by default"},
		{"qwen2-bi-loss", qwen2, randomSamples(3, 8, 97, 6),
			Options{Aggregation: DefaultAggregation, MLPPoint: MLPPost, Batch: 2, BI: true, Loss: true, NoTF32: true},
			exact, true, "q/k/v biases, no o_proj bias"},
		{"qwen3-bi-loss", qwen3, randomSamples(3, 8, 97, 7),
			Options{Aggregation: DefaultAggregation, MLPPoint: MLPPost, Batch: 2, BI: true, Loss: true, NoTF32: true},
			exact, true, "q_norm/k_norm over head_dim 16 before RoPE; a last batch of 1 < --batch (the norm's gathers at a smaller shape)"},
		{"llama-bias-pre", biased, randomSamples(4, 8, 97, 8),
			Options{Aggregation: DefaultAggregation, MLPPoint: MLPPre, Batch: 2, Loss: true, NoTF32: true},
			exact, true, "attention_bias and mlp_bias; the gate's pre-activation includes its bias"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && !c.short {
				t.Skip("emulated forward passes (-short runs one case)")
			}
			compareDevice(t, c.cfg, 0.1, c.samples, c.opt, c.tol)
		})
	}
}
