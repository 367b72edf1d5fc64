//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/model"
)

func TestTrainSIGINTCheckpointsAndExitsZero(t *testing.T) {
	dir := t.TempDir()
	model0 := filepath.Join(dir, "m")
	tinyCheckpoint(t, model0, model.Llama, 32, 1)
	train := filepath.Join(dir, "train")
	writeTinyData(t, train, 20, 100, 64, 1)
	out := filepath.Join(dir, "run")
	go func() {
		// Signal once training is under way (the handler is installed).
		for i := 0; i < 6000; i++ { // up to a minute on a loaded machine
			if b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); len(b) > 0 {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	got, err := runCLI(t, "train", "--model", model0, "--data", train, "--seq-len", "16", "--micro-batch", "2",
		"--steps", "100000", "--out", out, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(got[strings.Index(got, "{"):]), &res); err != nil {
		t.Fatalf("%v: %q", err, got)
	}
	if res["interrupted"] != true {
		t.Fatalf("result %v", res)
	}
	b, err := os.ReadFile(filepath.Join(out, "checkpoints", "latest"))
	if err != nil || !strings.HasPrefix(string(b), "step-") {
		t.Fatalf("no checkpoint after SIGINT: %q %v", b, err)
	}
}
