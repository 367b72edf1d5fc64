package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

const goldenNemotron = "../../model/testdata/golden/nemotron-tiny"

func readExpected(t *testing.T, dir string) (ids []int, mean float64, nll []float64, logits [][]float32) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		IDs    []int       `json:"ids"`
		Mean   float64     `json:"mean_nll"`
		NLL    []float64   `json:"nll"`
		Logits [][]float32 `json:"logits"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e.IDs, e.Mean, e.NLL, e.Logits
}

func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, v := range ids {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func TestEvalNLLJSONAndLogits(t *testing.T) {
	ids, mean, nll, logits := readExpected(t, goldenNemotron)
	out := filepath.Join(t.TempDir(), "logits.safetensors")
	got, err := runCLI(t, "eval", "nll", "--model", goldenNemotron, "--ids", joinIDs(ids), "--json", "--logits-out", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, `{"mean_nll":`) {
		t.Fatalf("JSON must start with mean_nll: %s", got)
	}
	var res struct {
		Mean float64   `json:"mean_nll"`
		NLL  []float64 `json:"nll"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.Mean-mean) > 1e-4 || len(res.NLL) != len(nll) {
		t.Fatalf("mean %v (%d values), want %v (%d)", res.Mean, len(res.NLL), mean, len(nll))
	}
	f, err := model.OpenSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Info("logits")
	if !ok || info.DType != model.F32 || info.Shape[0] != len(ids) || info.Shape[1] != len(logits[0]) {
		t.Fatalf("logits tensor: %+v", info)
	}
	buf := make([]float32, info.NumElements())
	if err := f.ReadF32("logits", buf); err != nil {
		t.Fatal(err)
	}
	V := info.Shape[1]
	for i := range logits {
		for j, want := range logits[i] {
			if math.Abs(float64(buf[i*V+j]-want)) > 1e-4 {
				t.Fatalf("logit (%d,%d) = %v want %v", i, j, buf[i*V+j], want)
			}
		}
	}
	// the table form
	txt, err := runCLI(t, "eval", "nll", "--model", goldenNemotron, "--ids", joinIDs(ids))
	if err != nil || !strings.Contains(txt, "mean_nll") || strings.Count(txt, "\n") != len(nll)+2 {
		t.Fatalf("table output (%v):\n%s", err, txt)
	}
	for _, bad := range []struct {
		args   []string
		reason string
	}{
		{[]string{"--ids", "5"}, "one token has nothing to score"},
		{[]string{"--ids", "1,x"}, "non-integer id"},
		{[]string{"--ids", "1,9999"}, "id outside the vocabulary"},
		{[]string{"--ids", "1,2", "--weights", "fast"}, "unknown weight mode"},
	} {
		if _, err := runCLI(t, append([]string{"eval", "nll", "--model", goldenNemotron}, bad.args...)...); err == nil {
			t.Errorf("%s: no error", bad.reason)
		}
	}
}

func TestGenerateIDs(t *testing.T) {
	got, err := runCLI(t, "generate", "--model", goldenNemotron, "--ids", "5,9,11", "--max-new-tokens", "6", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Prompt []int `json:"prompt_ids"`
		New    []int `json:"new_ids"`
		EOS    bool  `json:"stopped_on_eos"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Prompt) != 3 || (len(res.New) != 6 && !res.EOS) {
		t.Fatalf("unexpected result %s", got)
	}
	plain, err := runCLI(t, "generate", "--model", goldenNemotron, "--ids", "5,9,11", "--max-length", "9")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, "5,9,11,") {
		t.Fatalf("plain output %q", plain)
	}
	if _, err := runCLI(t, "generate", "--model", goldenNemotron, "--ids", "5,9,11", "--max-length", "3"); err == nil {
		t.Error("--max-length equal to the prompt must fail")
	}
}

func TestBenchForwardJSON(t *testing.T) {
	got, err := runCLI(t, "bench", "forward", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1",
		"--ffn", "64", "--vocab", "100", "--batch", "2", "--seq", "8", "--iters", "2", "--warmup", "0", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tokens_per_s", "gflops", "peak_rss_mb"} {
		if v, ok := res[k].(float64); !ok || v <= 0 {
			t.Errorf("%s = %v", k, res[k])
		}
	}
	if _, err := runCLI(t, "bench", "forward", "--arch", "gpt2"); err == nil {
		t.Error("unknown arch must fail")
	}
}

func FuzzParseIDs(f *testing.F) {
	for _, s := range []string{"1,2,3", " 4 , 5", "", ",,", "-1", "x", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseIDs(s)
		if err != nil {
			return
		}
		if len(ids) == 0 {
			t.Fatal("no error but no ids")
		}
		for _, v := range ids {
			if v < 0 {
				t.Fatalf("negative id %d accepted from %q", v, s)
			}
		}
	})
}

func TestGeneratePromptWithTokenizer(t *testing.T) {
	if _, err := os.Stat(testTokenizer); err != nil {
		t.Skip("tokenizer fixture missing:", err)
	}
	dir := t.TempDir()
	cfg, err := model.SyntheticConfig(model.Llama, 1, 32, 2, 1, 64, 300)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.RandomCheckpoint(dir, cfg, model.BF16, 1, 0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := runCLI(t, "generate", "--model", dir, "--prompt", "hello world", "--max-new-tokens", "5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Prompt []int  `json:"prompt_ids"`
		New    []int  `json:"new_ids"`
		Text   string `json:"text"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Prompt) < 2 || len(res.New) == 0 {
		t.Fatalf("prompt %v new %v", res.Prompt, res.New)
	}
	txt, err := runCLI(t, "generate", "--model", dir, "--prompt", "hello world", "--max-new-tokens", "3", "--temperature", "0.8", "--seed", "2")
	if err != nil || !strings.HasPrefix(txt, "hello world") {
		t.Fatalf("text output %q (%v)", txt, err)
	}
}

// eval nll on the Qwen reference cases (model/testdata/gen/make_cases.py,
// an independent PyTorch implementation): the mean and every position
// within 1e-4, in both weight modes, bf16 shards included.
func TestEvalNLLQwenCases(t *testing.T) {
	for _, name := range []string{"qwen2-gqa", "qwen2-tied-bf16-sharded", "qwen2-window", "qwen3-headdim", "qwen3-tied-bf16-sharded", "qwen3-bias-window"} {
		dir := filepath.Join("../../model/testdata/cases", name)
		ids, mean, nll, _ := readExpected(t, dir)
		for _, weights := range []string{"resident", "streaming"} {
			got, err := runCLI(t, "eval", "nll", "--model", dir, "--ids", joinIDs(ids), "--json", "--weights", weights)
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				Mean float64   `json:"mean_nll"`
				NLL  []float64 `json:"nll"`
			}
			if err := json.Unmarshal([]byte(got), &res); err != nil {
				t.Fatal(err)
			}
			worst := math.Abs(res.Mean - mean)
			for i := range nll {
				worst = math.Max(worst, math.Abs(res.NLL[i]-nll[i]))
			}
			t.Logf("%s %s: mean_nll %.6f, reference %.6f, max |dnll| %.2g", name, weights, res.Mean, mean, worst)
			if len(res.NLL) != len(nll) || worst > 1e-4 {
				t.Errorf("%s %s: nll differs from the reference by %.3g (tolerance 1e-4)", name, weights, worst)
			}
		}
	}
}
