//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/importance"
)

// --device cuda --bf16 end to end (the emulator without a GPU): bench
// forward reports bf16 weights taking less device memory than f32, eval
// nll stays within bf16 rounding of PyTorch's NLL, eval ppl of the CPU's,
// and importance's scores of the CPU's.
func TestBF16DeviceCUDA(t *testing.T) {
	shape := []string{"--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--ffn", "128", "--vocab", "512",
		"--batch", "1", "--seq", "16", "--iters", "1", "--warmup", "0", "--json"}
	bench := func(extra ...string) map[string]any {
		got, err := runCLI(t, append(append([]string{"bench", "forward", "--device", "cuda"}, shape...), extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(got), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	f, b := bench(), bench("--bf16")
	fw, _ := f["device_weights_mb"].(float64)
	bw, _ := b["device_weights_mb"].(float64)
	all, _ := b["f32_weights_mb"].(float64)
	t.Logf("bench forward: device weights f32 %.3f MiB, bf16 %.3f MiB (all f32 %.3f MiB); pool peak %v vs %v MiB", fw, bw, all,
		f["device_pool_peak_mb"], b["device_pool_peak_mb"])
	if b["bf16"] != true || !strings.Contains(b["weights"].(string), "bf16") || f["bf16"] != false {
		t.Errorf("bench forward --bf16 reports bf16 %v weights %v (without: %v)", b["bf16"], b["weights"], f["bf16"])
	}
	// f32: every tensor (the norms' optional biases beyond
	// model.F32WeightBytes' count); bf16: well under
	if fw < all || fw > 1.05*all || bw >= 0.75*fw {
		t.Errorf("device weights: f32 %.4f MiB (want ≈ %.4f), bf16 %.4f MiB (want < 3/4 of f32)", fw, all, bw)
	}

	// eval nll on the golden nemotron against PyTorch
	ids, mean, nll, _ := readExpected(t, goldenNemotron)
	res := evalNLLJSON(t, len(nll), "--model", goldenNemotron, "--ids", joinIDs(ids), "--device", "cuda", "--bf16")
	worst := 0.0
	for i := range nll {
		worst = max(worst, math.Abs(res.NLL[i]-nll[i])/(1+math.Abs(nll[i])))
	}
	t.Logf("eval nll --bf16 vs PyTorch: mean %.5f vs %.5f, max |Δ|/(1+|nll|) %.3g", res.Mean, mean, worst)
	if worst > 1e-2 { // emulator: 7e-4
		t.Errorf("eval nll --bf16: max |Δ|/(1+|nll|) %.3g vs PyTorch > 1e-2", worst)
	}

	// eval ppl: the mean token loss within 1% of the CPU's
	m := tinyEvalModel(t, true)
	text := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(text, []byte("The cat sat on the mat. It was a warm day, and the cat slept."), 0o644); err != nil {
		t.Fatal(err)
	}
	loss := func(extra ...string) float64 {
		got, err := runCLI(t, append([]string{"eval", "ppl", "--model", m, "--text", text, "--seq-len", "24", "--json"}, extra...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", extra, err, got)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(got), &r); err != nil {
			t.Fatal(err)
		}
		v, ok := r["token_loss"].(float64)
		if !ok {
			t.Fatalf("no token_loss in %s", got)
		}
		return v
	}
	c, g := loss("--device", "cpu"), loss("--device", "cuda", "--bf16")
	t.Logf("eval ppl: token loss CPU %.5f, device bf16 %.5f", c, g)
	if math.Abs(g-c) > 1e-2*math.Abs(c) {
		t.Errorf("eval ppl --bf16: loss %.5f vs CPU %.5f", g, c)
	}

	// importance: scores within bf16 rounding of the CPU's
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	scores := map[string]*importance.Scores{}
	for _, dev := range []string{"cpu", "cuda"} {
		out := filepath.Join(root, dev+"-bf16.json")
		args := []string{"importance", "--model", dir, "--data", prefix, "--samples", "3", "--seq-len", "12", "--batch", "2",
			"--layer-metrics", "bi", "--device", dev, "--out", out}
		if dev == "cuda" {
			args = append(args, "--bf16")
		}
		if _, err := runCLI(t, args...); err != nil {
			t.Fatalf("--device %s: %v", dev, err)
		}
		sc, err := importance.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		scores[dev] = sc
	}
	rel := func(what string, a, b []float64, tol float64) {
		var d, s float64
		for i := range b {
			d, s = max(d, math.Abs(a[i]-b[i])), max(s, math.Abs(b[i]))
		}
		t.Logf("importance --bf16: %s max |Δ| %.3g of max %.3g", what, d, s)
		if len(a) != len(b) || d > tol*s || math.IsNaN(d) {
			t.Errorf("importance --bf16: %s max |Δ| %.3g > %g × %.3g", what, d, tol, s)
		}
	}
	cs, gs := scores["cpu"], scores["cuda"]
	rel("channels", gs.Channels, cs.Channels, 2e-2)
	rel("layer 0 neurons", gs.Layers[0].Neurons, cs.Layers[0].Neurons, 2e-2)
	rel("BI", gs.Depth.BI, cs.Depth.BI, 2e-2)
}
