package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs the root command with args and returns stdout and the error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

const testTokenizer = "../../data/testdata/tok/gpt2-tiny.json"

func TestDataPrepareAndInspect(t *testing.T) {
	if _, err := os.Stat(testTokenizer); err != nil {
		t.Skip("tokenizer fixture missing:", err)
	}
	dir := t.TempDir()
	var jl strings.Builder
	for i := 0; i < 40; i++ {
		jl.WriteString(`{"text": "document number ` + strings.Repeat("x", i) + `"}` + "\n")
	}
	jl.WriteString(`{"title": "no text here"}` + "\n")
	in := filepath.Join(dir, "c.jsonl")
	if err := os.WriteFile(in, []byte(jl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "c")
	got, err := runCLI(t, "data", "prepare", "--input", in, "--tokenizer", testTokenizer, "--out", out, "--split", "0.75", "--workers", "2")
	if err != nil {
		t.Fatalf("prepare: %v\n%s", err, got)
	}
	for _, frag := range []string{"prepared 40 documents from 1 files", "skipped 1 bad inputs (jsonl 1)", "c.jsonl:41: no string field \"text\""} {
		if !strings.Contains(got, frag) {
			t.Errorf("prepare output lacks %q:\n%s", frag, got)
		}
	}
	got, err = runCLI(t, "data", "inspect", out, "--tokens", "8")
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, got)
	}
	// The tokenizer comes from the manifest; the sample is decoded text.
	for _, frag := range []string{"dataset    " + out + "_train", "dataset    " + out + "_val", "dtype      uint16", "text \"document"} {
		if !strings.Contains(got, frag) {
			t.Errorf("inspect output lacks %q:\n%s", frag, got)
		}
	}
	if _, err := runCLI(t, "data", "prepare", "--input", in, "--tokenizer", testTokenizer, "--out", out, "--strict", "--overwrite"); err == nil ||
		!strings.Contains(err.Error(), "c.jsonl:41") {
		t.Errorf("--strict err = %v, want c.jsonl:41", err)
	}
	if _, err := runCLI(t, "data", "inspect", filepath.Join(dir, "nothing")); err == nil {
		t.Error("inspect of a missing dataset succeeded")
	}
	if _, err := runCLI(t, "data", "prepare", "--tokenizer", testTokenizer, "--out", out); err == nil {
		t.Error("prepare without inputs succeeded")
	}
}
