package main

import (
	"bufio"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

func writeTinyData(t *testing.T, prefix string, docs, length, vocab int, seed int64) {
	t.Helper()
	w, err := data.NewIndexedWriter(prefix, data.DTypeForVocab(vocab))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(seed))
	for d := 0; d < docs; d++ {
		doc := make([]int32, length)
		a := rng.Intn(vocab)
		for i := range doc {
			doc[i] = int32((a + 3*i) % vocab)
		}
		if err := w.AddDocument(doc); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func tinyCheckpoint(t *testing.T, dir string, family model.Family, ffn int, seed uint64) {
	t.Helper()
	cfg, err := model.SyntheticConfig(family, 2, 32, 4, 2, ffn, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.RandomCheckpoint(dir, cfg, model.F32, seed, 0); err != nil {
		t.Fatal(err)
	}
}

func TestDistillAndTrainCLI(t *testing.T) {
	dir := t.TempDir()
	teacher, student := filepath.Join(dir, "teacher"), filepath.Join(dir, "student")
	tinyCheckpoint(t, teacher, model.Nemotron, 64, 1)
	tinyCheckpoint(t, student, model.Nemotron, 32, 2)
	train, val := filepath.Join(dir, "train"), filepath.Join(dir, "val")
	writeTinyData(t, train, 20, 100, 64, 1)
	writeTinyData(t, val, 4, 100, 64, 2)
	yml := filepath.Join(dir, "run.yaml")
	os.WriteFile(yml, []byte("seq_len: 16\nmicro_batch: 2\nglobal_batch: 4\nsteps: 50\nlr: 0.003\nwarmup: 1\nval_every: 2\nval_batches: 1\n"), 0o644)
	out := filepath.Join(dir, "run")
	// --steps on the command line wins over the file's 50.
	got, err := runCLI(t, "distill", "--teacher", teacher, "--student", student, "--data", train, "--val", val,
		"--config", yml, "--steps", "4", "--out", out, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatalf("%v: %q", err, got)
	}
	if res["steps"].(float64) != 4 || res["val_loss"] == nil {
		t.Fatalf("result %v", res)
	}
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"step", "lr", "loss", "kl", "grad_norm", "tokens_per_s"} {
			if _, ok := m[k]; !ok {
				t.Errorf("metrics line %d lacks %q: %s", lines+1, k, sc.Text())
			}
		}
		if _, ok := m["val_loss"]; ok != (lines%2 == 1) {
			t.Errorf("metrics line %d: val_loss every 2 steps: %s", lines+1, sc.Text())
		}
		lines++
	}
	if lines != 4 {
		t.Errorf("%d metric lines, want 4", lines)
	}
	// The final checkpoint is a student checkpoint the rest of the tools load.
	if _, err := model.Load(filepath.Join(out, "checkpoints", "step-0000004"), model.Options{}); err != nil {
		t.Fatal(err)
	}

	// train: random init from the teacher's config.json, then fine-tune.
	scratch := filepath.Join(dir, "scratch")
	if _, err := runCLI(t, "train", "--model", filepath.Join(teacher, "config.json"), "--init", "random",
		"--data", train, "--seq-len", "16", "--micro-batch", "2", "--steps", "2", "--out", scratch); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "train", "--model", filepath.Join(scratch, "checkpoints", "step-0000002"),
		"--data", train, "--seq-len", "16", "--micro-batch", "2", "--steps", "2", "--out", filepath.Join(dir, "ft")); err != nil {
		t.Fatal(err)
	}
}

func TestDistillCLIErrors(t *testing.T) {
	dir := t.TempDir()
	teacher, student, other := filepath.Join(dir, "teacher"), filepath.Join(dir, "student"), filepath.Join(dir, "other")
	tinyCheckpoint(t, teacher, model.Nemotron, 64, 1)
	tinyCheckpoint(t, student, model.Nemotron, 32, 2)
	cfg, _ := model.SyntheticConfig(model.Nemotron, 1, 32, 4, 2, 32, 80)
	if err := model.RandomCheckpoint(other, cfg, model.F32, 3, 0); err != nil {
		t.Fatal(err)
	}
	train, short := filepath.Join(dir, "train"), filepath.Join(dir, "short")
	writeTinyData(t, train, 5, 100, 64, 1)
	writeTinyData(t, short, 1, 10, 64, 1)
	// A path under a regular file cannot be created, even by root.
	ro := filepath.Join(dir, "file")
	os.WriteFile(ro, []byte("x"), 0o644)
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("seq_len: 16\nlearning_rate: 0.1\n"), 0o644)
	base := []string{"distill", "--student", student, "--seq-len", "16", "--micro-batch", "2", "--steps", "1"}
	for _, tc := range []struct {
		args   []string
		want   string
		reason string
	}{
		{append(base, "--teacher", other, "--data", train, "--out", filepath.Join(dir, "o1")), "vocabulary", "teacher and student vocabularies differ"},
		{append(base, "--teacher", teacher, "--data", short, "--out", filepath.Join(dir, "o2")), "sequence length", "data shorter than one sample"},
		{append(base, "--teacher", teacher, "--data", train, "--out", filepath.Join(ro, "sub")), "output directory", "unwritable output directory"},
		{append(base, "--teacher", teacher, "--data", train, "--out", filepath.Join(dir, "o3"), "--global-batch", "3"), "multiple", "global batch not a multiple of micro-batch"},
		{append(base, "--data", train, "--out", filepath.Join(dir, "o4")), "--teacher", "no teacher"},
		{append(base, "--teacher", teacher, "--data", train, "--out", filepath.Join(dir, "o6"), "--config", badYAML), "learning_rate", "unknown YAML key"},
		{append(base, "--teacher", teacher, "--data", train, "--out", filepath.Join(dir, "o7"), "--intermediate", "0-1"), "STUDENT:TEACHER", "malformed layer pair"},
		{append(base, "--teacher", teacher, "--data", train, "--out", filepath.Join(dir, "o8"), "--intermediate", "0:9"), "teacher layer 9", "teacher layer out of range"},
		{append(base, "--teacher", teacher, "--data", train, "--out", filepath.Join(dir, "o5"), "--top-k", "5", "--reverse-kl", "1"), "top_k", "reverse KL with top-k"},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil {
			t.Errorf("%s: no error", tc.reason)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.reason, err, tc.want)
		}
	}
}

// --lr 0 was typed (the flag defaults to 2e-4): it is refused, not turned
// into the library's default.
func TestTrainRefusesNonPositiveLR(t *testing.T) {
	for _, lr := range []string{"0", "-1e-4"} {
		_, err := runCLI(t, "train", "--model", t.TempDir(), "--data", "x", "--seq-len", "8", "--micro-batch", "1",
			"--steps", "1", "--lr", lr, "--out", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "learning rate must be positive") {
			t.Errorf("--lr %s: %v", lr, err)
		}
	}
}

// A second train into a used --out is refused naming the flags that
// continue or replace the run.
func TestTrainRefusesUsedOutNamingFlags(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "m")
	tinyCheckpoint(t, m, model.Llama, 32, 1)
	data := filepath.Join(dir, "train")
	writeTinyData(t, data, 10, 100, 64, 1)
	out := filepath.Join(dir, "run")
	args := []string{"train", "--model", m, "--data", data, "--seq-len", "8", "--micro-batch", "1", "--steps", "1", "--out", out}
	if _, err := runCLI(t, args...); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, args...)
	if err == nil || !strings.Contains(err.Error(), "--resume") || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("second run into %s: %v, want a refusal naming --resume and --overwrite", out, err)
	}
}
