package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// minitron plan: the table and --json from named shapes and from a
// config.json, and its refusals.
func TestPlanCmd(t *testing.T) {
	out, err := runCLI(t, "plan", "--teacher", "nemotron:nemotron-4-15b", "--student", "nemotron:minitron-8b", "--seq-len", "4096",
		"--precision", "bf16", "--world-size", "8", "--zero", "2", "--recompute", "--logit-chunk", "512", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		PerGPU int64            `json:"per_gpu_bytes"`
		Parts  map[string]int64 `json:"parts"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var sum int64
	for _, b := range p.Parts {
		sum += b
	}
	if p.PerGPU <= 0 || p.PerGPU >= 80e9 || sum != p.PerGPU || len(p.Parts) != 7 {
		t.Errorf("plan %+v: want 7 parts summing to a total under 80 GB", p)
	}
	dir := t.TempDir()
	cfg := `{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 512}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "plan", "--student", dir, "--seq-len", "64", "--micro-batch", "2", "--global-batch", "8")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"student_weights", "gradients", "per GPU", "GiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"plan", "--seq-len", "8"}, "--student is required", "no student"},
		{[]string{"plan", "--student", dir}, "--seq-len is required", "no sequence length"},
		{[]string{"plan", "--student", dir, "--seq-len", "8", "--micro-batch", "2", "--global-batch", "3"}, "not a multiple", "a global batch that does not split"},
		{[]string{"plan", "--student", filepath.Join(dir, "missing"), "--seq-len", "8"}, "--student", "a missing config"},
		{[]string{"plan", "--student", dir, "--seq-len", "8", "--precision", "fp16"}, "want f32 or bf16", "unknown precision"},
	} {
		if _, err := runCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.reason, err, c.want)
		}
	}
}

// distill's --precision takes f32 or bf16 and nothing else, refused before
// any file is read (the paths do not exist).
func TestDistillPrecisionFlag(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	_, err := runCLI(t, "distill", "--teacher", missing, "--student", missing, "--data", missing, "--seq-len", "8",
		"--micro-batch", "1", "--steps", "1", "--out", missing, "--precision", "fp16")
	if err == nil || !strings.Contains(err.Error(), `--precision "fp16": want f32 or bf16`) {
		t.Errorf("--precision fp16: %v", err)
	}
}
