//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// distill --device cuda end to end (on the emulator without a GPU): the
// metrics file and the checkpoint are written as on the CPU, and
// --resume continues from it.
func TestDistillDeviceCUDA(t *testing.T) {
	dir := t.TempDir()
	teacher, student := filepath.Join(dir, "teacher"), filepath.Join(dir, "student")
	tinyCheckpoint(t, teacher, model.Nemotron, 64, 1)
	tinyCheckpoint(t, student, model.Nemotron, 32, 2)
	train := filepath.Join(dir, "train")
	writeTinyData(t, train, 5, 100, 64, 1)
	out := filepath.Join(dir, "run")
	args := []string{"distill", "--teacher", teacher, "--student", student, "--data", train, "--seq-len", "16",
		"--micro-batch", "2", "--steps", "3", "--save-every", "2", "--out", out, "--device", "cuda", "--json"}
	stdout, err := runCLI(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout)
	}
	if res["steps"] != float64(3) || !strings.HasSuffix(res["checkpoint"].(string), "step-0000003") {
		t.Fatalf("result %v", res)
	}
	for _, f := range []string{"metrics.jsonl", "checkpoints/step-0000003/optimizer.bin", "checkpoints/step-0000003/trainer_state.json", "checkpoints/step-0000003/config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// The intermediate-state loss runs on the device too (student width 32
	// → teacher width 64 through the learned projection); its terms reach
	// metrics.jsonl.
	isOut := filepath.Join(dir, "run-is")
	isArgs := append(append([]string{}, args...), "--intermediate", "1:1", "--steps", "2", "--save-every", "0")
	isArgs[slices.Index(isArgs, "--out")+1] = isOut
	if _, err := runCLI(t, isArgs...); err != nil {
		t.Fatalf("intermediate loss on the device: %v", err)
	}
	metrics, err := os.ReadFile(filepath.Join(isOut, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(metrics), `"is":`) || !strings.Contains(string(metrics), `"is_alpha":`) {
		t.Errorf("metrics.jsonl lacks the intermediate-state terms:\n%s", metrics)
	}
}
