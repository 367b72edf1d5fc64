package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// export hf writes a checkpoint the other commands load, and refuses bad
// flags before writing anything.
func TestExportHFCLI(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	if got, err := runCLI(t, "init", "--arch", "llama", "--layers", "1", "--tokenizer", testTokenizer, "--out", src); err != nil {
		t.Fatalf("init: %v\n%s", err, got)
	}
	out := filepath.Join(root, "bf16")
	got, err := runCLI(t, "export", "hf", "--model", src, "--out", out, "--dtype", "bf16", "--shard-size", "0")
	if err != nil || !strings.Contains(got, "wrote "+out+" (model.safetensors)") {
		t.Fatalf("export hf: %v\n%s", err, got)
	}
	for _, args := range [][]string{
		{"inspect", out},
		{"eval", "nll", "--model", out, "--ids", "1,2,3,4", "--json"},
		{"generate", "--model", out, "--prompt", "hello", "--max-new-tokens", "2", "--json"},
		{"export", "hf", "--model", out, "--out", filepath.Join(root, "back"), "--dtype", "f32"},
	} {
		if got, err := runCLI(t, args...); err != nil {
			t.Errorf("%s on the export: %v\n%s", args[0], err, got)
		}
	}
	cases := []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"--model", src, "--out", filepath.Join(root, "x"), "--dtype", "q4"}, "--dtype", "an unknown dtype names the flag"},
		{[]string{"--model", src, "--out", out, "--dtype", "bf16"}, "--out " + out + " already exists", "an existing output names the flag"},
		{[]string{"--model", filepath.Join(root, "nope"), "--out", filepath.Join(root, "x"), "--dtype", "bf16"}, "--model ", "a missing model names the flag"},
		{[]string{"--model", src, "--out", filepath.Join(root, "x"), "--dtype", "bf16", "--shard-size", "lots"}, "--shard-size", "a bad shard size"},
	}
	for _, c := range cases {
		got, err := runCLI(t, append([]string{"export", "hf"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q\n%s", c.reason, err, c.want, got)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "x")); err == nil {
		t.Error("a refused export wrote its output")
	}
}

// --save-dtype reaches distill.Config; an unknown one names the flag.
func TestSaveDTypeFlag(t *testing.T) {
	cases := []struct {
		val, want, err string
		reason         string
	}{
		{"bf16", "BF16", "", "bf16 checkpoints"},
		{"f32", "F32", "", "the default"},
		{"q8_0", "", "--save-dtype", "not a checkpoint dtype"},
	}
	for _, c := range cases {
		o := &TrainOptions{Student: "s", LR: 1e-3, Device: "cpu", SaveDType: c.val}
		cfg, err := o.config(false, nil)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v", c.reason, err)
			}
			continue
		}
		if err != nil || string(cfg.SaveDType) != c.want {
			t.Errorf("%s: SaveDType %q, err %v", c.reason, cfg.SaveDType, err)
		}
	}
}

// export gguf writes a file and refuses bad flags before writing.
func TestExportGGUFCLI(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	if got, err := runCLI(t, "init", "--arch", "nemotron", "--out", src); err != nil {
		t.Fatalf("init: %v\n%s", err, got)
	}
	out := filepath.Join(root, "m.gguf")
	got, err := runCLI(t, "export", "gguf", "--model", src, "--out", out, "--dtype", "q8_0")
	if err != nil || !strings.Contains(got, "architecture nemotron") || !strings.Contains(got, "wrote "+out) {
		t.Fatalf("export gguf: %v\n%s", err, got)
	}
	if b, err := os.ReadFile(out); err != nil || string(b[:4]) != "GGUF" {
		t.Fatalf("not a GGUF file: %v", err)
	}
	cases := []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"--model", src, "--out", filepath.Join(root, "x.gguf"), "--dtype", "q4_k"}, "--dtype", "an unsupported dtype names the flag"},
		{[]string{"--model", src, "--out", out}, "--out " + out + " already exists", "an existing output names the flag"},
		{[]string{"--model", filepath.Join(root, "nope"), "--out", filepath.Join(root, "x.gguf")}, "--model ", "a missing model names the flag"},
	}
	for _, c := range cases {
		got, err := runCLI(t, append([]string{"export", "gguf"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q\n%s", c.reason, err, c.want, got)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "x.gguf")); err == nil {
		t.Error("a refused export wrote its output")
	}
}
