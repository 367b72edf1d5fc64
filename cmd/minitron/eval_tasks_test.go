package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
)

const evalFixtures = "../../eval/testdata"

// tinyEvalModel copies the eval golden checkpoint (with its tokenizer) into
// a temp dir, optionally without the tokenizer.
func tinyEvalModel(t *testing.T, withTokenizer bool) string {
	t.Helper()
	src := filepath.Join(evalFixtures, "golden", "tiny")
	dst := filepath.Join(t.TempDir(), "tiny")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		if f == "tokenizer.json" && !withTokenizer {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestEvalTasksCompare(t *testing.T) {
	m := tinyEvalModel(t, true)
	out := filepath.Join(t.TempDir(), "report.md")
	task := func(n, p string) string { return n + "=" + filepath.Join(evalFixtures, "tasks", p) }
	got, err := runCLI(t, "eval", "tasks", "--model", m, "--model", m, "--name", "teacher", "--name", "student",
		"--task", task("hellaswag", "hellaswag.jsonl"), "--task", task("winogrande", "winogrande.jsonl"),
		"--task", task("arc_challenge", "arc_challenge_hf.jsonl"), "--task", task("mmlu", "mmlu"),
		"--task", task("gsm8k", "gsm8k/test.jsonl"), "--ppl", "wino="+filepath.Join(evalFixtures, "tasks", "winogrande.jsonl"), "--ppl-seq-len", "64",
		"--limit", "2", "--batch", "2", "--out", out, "--samples", out+".samples.jsonl")
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| teacher | 39.1K | 18.6K |", "| student | 39.1K |", "mmlu (5-shot)", "gsm8k (5-shot)", "Δ student", "wino bits/byte", "| wino | bits per byte |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	samples, err := os.ReadFile(out + ".samples.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	// 2 models × (2 hellaswag + 2 winogrande + 2 arc + 4 mmlu + 2 gsm8k) items.
	if n := strings.Count(string(samples), "\n"); n != 24 || !strings.Contains(string(samples), `"response":`) {
		t.Errorf("samples: %d lines", n)
	}
	var rep struct {
		Models []struct {
			Name  string
			Tasks []struct {
				Task string
				N    int
			}
		}
	}
	b, err := os.ReadFile(strings.TrimSuffix(out, ".md") + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) != 2 || len(rep.Models[1].Tasks) != 5 || rep.Models[0].Tasks[3].N != 4 {
		t.Errorf("json report: %+v", rep)
	}
}

func TestEvalBadInput(t *testing.T) {
	m := tinyEvalModel(t, true)
	noTok := tinyEvalModel(t, false)
	bad := filepath.Join(evalFixtures, "bad")
	cases := []struct {
		reason string
		args   []string
		want   string
	}{
		{"model without tokenizer", []string{"eval", "tasks", "--model", noTok, "--task", "arc_easy=" + filepath.Join(evalFixtures, "tasks", "arc_easy.jsonl")}, "has no tokenizer"},
		{"malformed task file names file:line", []string{"eval", "tasks", "--model", m, "--task", "hellaswag=" + filepath.Join(bad, "hellaswag_truncated.jsonl")}, "hellaswag_truncated.jsonl:2: invalid JSON"},
		{"wrong format", []string{"eval", "tasks", "--model", m, "--task", "winogrande=" + filepath.Join(evalFixtures, "tasks", "arc_easy.jsonl")}, "is this a winogrande"},
		{"task spec without =", []string{"eval", "tasks", "--model", m, "--task", "hellaswag"}, "want NAME=PATH"},
		{"ppl needs one input", []string{"eval", "ppl", "--model", m, "--seq-len", "8"}, "exactly one of --data"},
		{"ppl stride", []string{"eval", "ppl", "--model", m, "--seq-len", "8", "--stride", "9", "--text", filepath.Join(evalFixtures, "tasks", "winogrande.jsonl")}, "Stride 9 must be in [1, SeqLen 8]"},
		{"plot of a non-run", []string{"eval", "plot", t.TempDir(), "--out", filepath.Join(t.TempDir(), "x.png")}, "no metrics.jsonl"},
	}
	for _, c := range cases {
		_, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.reason, err, c.want)
		}
	}
}

func TestEvalPPLText(t *testing.T) {
	m := tinyEvalModel(t, true)
	got, err := runCLI(t, "eval", "ppl", "--model", m, "--text", filepath.Join(evalFixtures, "tasks", "winogrande.jsonl"), "--seq-len", "64", "--stride", "32", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	var r struct {
		Tokens      int     `json:"tokens"`
		Windows     int     `json:"windows"`
		BitsPerByte float64 `json:"bits_per_byte"`
		TokenLoss   float64 `json:"token_loss"`
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if r.Tokens == 0 || r.Windows < 2 || r.BitsPerByte <= 0 || r.TokenLoss <= 0 {
		t.Errorf("ppl: %+v", r)
	}
	// The same tokens as a Megatron dataset give the same token loss.
	tok, err := data.LoadTokenizer(m)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(evalFixtures, "tasks", "winogrande.jsonl"))
	var ids []int32
	for _, id := range tok.Encode(string(text)) {
		ids = append(ids, int32(id))
	}
	prefix := filepath.Join(t.TempDir(), "corpus")
	if err := data.WriteIndexed(prefix, data.DTypeForVocab(320), [][]int32{ids}); err != nil {
		t.Fatal(err)
	}
	got, err = runCLI(t, "eval", "ppl", "--model", m, "--data", prefix, "--seq-len", "64", "--stride", "32", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	var d struct {
		Tokens    int     `json:"tokens"`
		TokenLoss float64 `json:"token_loss"`
	}
	if err := json.Unmarshal([]byte(got), &d); err != nil {
		t.Fatal(err)
	}
	if d.Tokens != r.Tokens || math.Abs(d.TokenLoss-r.TokenLoss) > 1e-9 {
		t.Errorf("--data: %d tokens loss %v; --text: %d tokens loss %v", d.Tokens, d.TokenLoss, r.Tokens, r.TokenLoss)
	}
}

// TestEvalTasksGeneration runs xlsum and humaneval through eval tasks with
// --limit and --resume: the report carries ROUGE-L and pass@1, the partial
// files hold the finished items, and a second run reuses them and reports
// the same numbers.
func TestEvalTasksGeneration(t *testing.T) {
	m := tinyEvalModel(t, true)
	dir := t.TempDir()
	resume := filepath.Join(dir, "partial")
	args := func(out string) []string {
		return []string{"eval", "tasks", "--model", m, "--name", "tiny",
			"--task", "xlsum=" + filepath.Join(evalFixtures, "tasks", "xlsum.jsonl"),
			"--task", "humaneval=" + filepath.Join(evalFixtures, "code", "humaneval.jsonl"),
			"--limit", "2", "--max-gen-tokens", "12",
			"--resume", resume, "--out", out}
	}
	out1 := filepath.Join(dir, "r1.md")
	if got, err := runCLI(t, args(out1)...); err != nil {
		if strings.Contains(err.Error(), "sandbox") {
			t.Skip(err)
		}
		t.Fatalf("%v\n%s", err, got)
	}
	md, err := os.ReadFile(out1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"xlsum (0-shot)", "humaneval (0-shot)", "| xlsum | rougeL | 2 |", "| humaneval | pass@1 | 2 |", "ROUGE-L F1 ×100"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, task := range []string{"xlsum", "humaneval"} {
		b, err := os.ReadFile(partialPath(resume, "tiny", task))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n != 3 {
			t.Errorf("%s partial file: %d lines, want a header and 2 items", task, n)
		}
	}
	out2 := filepath.Join(dir, "r2.md")
	if got, err := runCLI(t, args(out2)...); err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	j1, _ := os.ReadFile(filepath.Join(dir, "r1.json"))
	j2, _ := os.ReadFile(filepath.Join(dir, "r2.json"))
	if string(j1) != string(j2) || len(j1) == 0 {
		t.Errorf("resumed run reports differently:\n%s\n%s", j1, j2)
	}
	bad := []struct {
		reason string
		extra  []string
		want   string
	}{
		{"several greedy samples", []string{"--code-samples", "3"}, "--temperature"},
		{"unknown sampler", []string{"--fewshot-sampler", "bogus"}, `"bogus"`},
		{"top-p above 1", []string{"--temperature", "0.8", "--top-p", "2"}, "--top-p"},
	}
	for _, c := range bad {
		if _, err := runCLI(t, append(args(filepath.Join(dir, "bad.md")), c.extra...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.reason, err, c.want)
		}
	}
}
