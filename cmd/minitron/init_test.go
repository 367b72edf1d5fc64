package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minitron init writes checkpoints that the other commands load.
func TestInitCLI(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		args   []string
		inspec []string // in `inspect` output
		prompt bool     // has a tokenizer: generate from text
		reason string
	}{
		{[]string{"--arch", "nemotron"}, []string{"nemotron", "layers 2"}, false, "the tiny default"},
		{[]string{"--arch", "llama", "--size", "small", "--layers", "1", "--tokenizer", testTokenizer, "--dtype", "bf16"}, []string{"llama", "vocab 266"}, true, "llama with a tokenizer file, bf16"},
		{[]string{"--arch", "mistral", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--ffn", "64", "--vocab", "300", "--bos", "1", "--eos", "2,3", "--sliding-window", "4", "--shard-size", "20KB"}, []string{"mistral", "window 4"}, false, "mistral with explicit shape, specials and shards"},
	}
	for i, c := range cases {
		out := filepath.Join(root, "ck"+string(rune('a'+i)))
		got, err := runCLI(t, append([]string{"init", "--out", out, "--seed", "3"}, c.args...)...)
		if err != nil {
			t.Errorf("%s: init: %v\n%s", c.reason, err, got)
			continue
		}
		if !strings.Contains(got, "wrote "+out) {
			t.Errorf("%s: init printed %q", c.reason, got)
		}
		got, err = runCLI(t, "inspect", out)
		if err != nil {
			t.Errorf("%s: inspect: %v\n%s", c.reason, err, got)
			continue
		}
		got = strings.Join(strings.Fields(got), " ") // inspect aligns its columns
		for _, w := range c.inspec {
			if !strings.Contains(got, w) {
				t.Errorf("%s: inspect lacks %q:\n%s", c.reason, w, got)
			}
		}
		got, err = runCLI(t, "eval", "nll", "--model", out, "--ids", "1,2,3,4", "--json")
		if err != nil || !strings.Contains(got, "mean_nll") {
			t.Errorf("%s: eval nll: %v\n%s", c.reason, err, got)
		}
		if c.prompt {
			got, err = runCLI(t, "generate", "--model", out, "--prompt", "hello", "--max-new-tokens", "2", "--json")
			var res struct {
				New []int `json:"new_ids"`
			}
			if err != nil || json.Unmarshal([]byte(got), &res) != nil || len(res.New) == 0 {
				t.Errorf("%s: generate: %v\n%s", c.reason, err, got)
			}
		}
	}
	// An existing output is refused unless --overwrite, and nothing is touched.
	out := filepath.Join(root, "cka")
	before, _ := os.ReadFile(filepath.Join(out, "config.json"))
	if _, err := runCLI(t, "init", "--arch", "llama", "--out", out); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("existing --out: got %v, want an error naming --overwrite", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "config.json")); string(after) != string(before) {
		t.Error("a refused init changed the checkpoint")
	}
	if got, err := runCLI(t, "init", "--arch", "llama", "--out", out, "--overwrite"); err != nil {
		t.Errorf("--overwrite: %v\n%s", err, got)
	}
	// Flag errors name the flags.
	for _, c := range []struct {
		args   []string
		errHas string
		reason string
	}{
		{[]string{"--out", filepath.Join(root, "x")}, "--arch", "no architecture"},
		{[]string{"--arch", "llama", "--out", filepath.Join(root, "x"), "--bos", "7x"}, "--bos", "a bad special token"},
		{[]string{"--arch", "llama", "--out", filepath.Join(root, "x"), "--vocab", "10", "--bos", "10"}, "BOS 10 is outside the vocabulary", "bos beyond the vocabulary (the library names its option)"},
		{[]string{"--arch", "llama", "--out", filepath.Join(root, "x"), "--dtype", "f64"}, "--dtype", "a bad dtype"},
	} {
		if _, err := runCLI(t, append([]string{"init"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: got %v, want an error containing %q", c.reason, err, c.errHas)
		}
	}
	// --dry-run writes nothing and prints the config.
	got, err := runCLI(t, "init", "--arch", "nemotron", "--size", "minitron-4b", "--dry-run", "--out", filepath.Join(root, "big"))
	if err != nil || !strings.Contains(got, "4.19B") || !strings.Contains(got, `"hidden_size": 3072`) {
		t.Errorf("--dry-run of minitron-4b: %v\n%s", err, got)
	}
	if _, err := os.Stat(filepath.Join(root, "big")); err == nil {
		t.Error("--dry-run wrote the checkpoint")
	}
}
