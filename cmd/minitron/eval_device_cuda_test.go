//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// The eval commands and bench forward with --device cuda (on the CPU
// emulator without a GPU): the same numbers as --device cpu.

// eval nll --device cuda on the golden nemotron against PyTorch's NLL and
// logits (expected.json), as TestEvalNLLJSONAndLogits checks the CPU.
func TestEvalNLLDeviceCUDA(t *testing.T) {
	ids, mean, nll, logits := readExpected(t, goldenNemotron)
	out := filepath.Join(t.TempDir(), "logits.safetensors")
	res := evalNLLJSON(t, len(nll), "--model", goldenNemotron, "--ids", joinIDs(ids), "--logits-out", out, "--device", "cuda")
	worst := math.Abs(res.Mean - mean)
	for i := range nll {
		worst = max(worst, math.Abs(res.NLL[i]-nll[i]))
	}
	f, err := model.OpenSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Info("logits")
	buf := make([]float32, info.NumElements())
	if err := f.ReadF32("logits", buf); err != nil {
		t.Fatal(err)
	}
	V, lw := len(logits[0]), 0.0
	for i := range logits {
		for j, want := range logits[i] {
			lw = max(lw, math.Abs(float64(buf[i*V+j]-want)))
		}
	}
	t.Logf("vs PyTorch: NLL max |Δ| %.3g, logits max |Δ| %.3g (device TF32 on)", worst, lw)
	// TF32 is on (the CLI default): its 10-bit mantissa products allow
	// more than the CPU's 1e-4.
	if worst > 5e-3 || lw > 5e-3 {
		t.Errorf("NLL max |Δ| %.3g, logits max |Δ| %.3g vs PyTorch, want ≤ 5e-3", worst, lw)
	}
	if _, err := runCLI(t, "eval", "nll", "--model", goldenNemotron, "--ids", "1,99999", "--device", "cuda"); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("an id outside the vocabulary: %v", err)
	}
}

// eval ppl and eval tasks (multiple choice and --ppl) with --no-tf32 give
// the same output on both devices to the printed precision. Inputs are
// small: the emulator runs ~100 tokens/s.
func TestEvalPPLAndTasksDeviceCUDA(t *testing.T) {
	m := tinyEvalModel(t, true)
	text := filepath.Join(t.TempDir(), "doc.txt")
	if err := os.WriteFile(text, []byte("The cat sat on the mat. It was a warm day, and the cat slept."), 0o644); err != nil {
		t.Fatal(err)
	}
	ppl := func(dev string) string {
		got, err := runCLI(t, "eval", "ppl", "--model", m, "--text", text, "--seq-len", "24", "--stride", "12", "--device", dev, "--no-tf32", "--json")
		if err != nil {
			t.Fatalf("%s: %v\n%s", dev, err, got)
		}
		return got
	}
	c, g := ppl("cpu"), ppl("cuda")
	if !sameReport(t, c, g) {
		t.Errorf("eval ppl differs:\ncuda:\n%s\ncpu:\n%s", g, c)
	}
	if !strings.Contains(g, `"windows": 3`) {
		t.Errorf("want 3 windows:\n%s", g)
	}
	wino := "winogrande=" + filepath.Join(evalFixtures, "tasks", "winogrande.jsonl")
	tasks := func(dev string) string {
		out := filepath.Join(t.TempDir(), "report.md")
		got, err := runCLI(t, "eval", "tasks", "--model", m, "--task", wino, "--ppl", "doc="+text, "--ppl-seq-len", "16",
			"--limit", "2", "--out", out, "--samples", out+".samples.jsonl", "--device", dev, "--no-tf32")
		if err != nil {
			t.Fatalf("%s: %v\n%s", dev, err, got)
		}
		js, err := os.ReadFile(filepath.Join(filepath.Dir(out), "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		// every choice's log-likelihood, one item a line
		samples, err := os.ReadFile(out + ".samples.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(samples)), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], "loglik") {
			t.Fatalf("samples: %s", samples)
		}
		return "[" + string(js) + "," + strings.Join(lines, ",") + "]"
	}
	if c, g := tasks("cpu"), tasks("cuda"); !sameReport(t, c, g) {
		t.Errorf("eval tasks report and samples differ:\ncuda:\n%s\ncpu:\n%s", g, c)
	}
}

// sameReport compares two eval tasks JSON reports: equal structure and
// strings, numbers within 1e-5 relative.
func sameReport(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatal(err)
	}
	var eq func(x, y any) bool
	eq = func(x, y any) bool {
		switch xv := x.(type) {
		case map[string]any:
			yv, ok := y.(map[string]any)
			if !ok || len(xv) != len(yv) {
				return false
			}
			for k := range xv {
				if !eq(xv[k], yv[k]) {
					return false
				}
			}
			return true
		case []any:
			yv, ok := y.([]any)
			if !ok || len(xv) != len(yv) {
				return false
			}
			for i := range xv {
				if !eq(xv[i], yv[i]) {
					return false
				}
			}
			return true
		case float64:
			yv, ok := y.(float64)
			return ok && math.Abs(xv-yv) <= 1e-5*math.Max(math.Abs(xv), 1)
		}
		return x == y
	}
	return eq(x, y)
}

func TestBenchForwardDeviceCUDA(t *testing.T) {
	got, err := runCLI(t, "bench", "forward", "--device", "cuda", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1",
		"--ffn", "64", "--vocab", "100", "--batch", "2", "--seq", "8", "--iters", "2", "--warmup", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tokens_per_s", "gflops", "best_ms"} {
		if v, ok := res[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v", k, res[k])
		}
	}
	if s, _ := res["device"].(string); s == "" {
		t.Errorf("no device name: %v", res)
	}
	if s, _ := res["cublas"].(string); s == "" {
		t.Errorf("no cuBLAS library: %v", res)
	}
	txt, err := runCLI(t, "bench", "forward", "--device", "cuda", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1",
		"--ffn", "64", "--vocab", "100", "--batch", "1", "--seq", "8", "--iters", "1", "--warmup", "0")
	if err != nil || !strings.Contains(txt, "cuBLAS") || !strings.Contains(txt, "GFLOP/s") {
		t.Errorf("text output (%v):\n%s", err, txt)
	}
}

// nllJSON is eval nll --json's output.
type nllJSON struct {
	Mean float64   `json:"mean_nll"`
	NLL  []float64 `json:"nll"`
}

// evalNLLJSON runs eval nll --json with args and checks it gave n values.
func evalNLLJSON(t *testing.T, n int, args ...string) nllJSON {
	t.Helper()
	got, err := runCLI(t, append([]string{"eval", "nll", "--json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var res nllJSON
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.NLL) != n {
		t.Fatalf("%d NLL values, want %d", len(res.NLL), n)
	}
	return res
}
