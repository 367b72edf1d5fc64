//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reproduce --device cuda in a CUDA build: the flags reach the pipeline, GPU
// 0 opens, and a run directory holding a CPU run is refused before any
// stage runs (the whole pipeline on the device is
// reproduce.TestReproduceDeviceCUDA).
func TestReproduceDeviceCUDA(t *testing.T) {
	out := t.TempDir()
	teacher := filepath.Join(out, "teacher")
	if err := os.MkdirAll(teacher, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(teacher, "STAGE_DONE.json")
	if err := os.WriteFile(marker, []byte(`{"stage":"teacher","key":"0123456789abcdef"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runCLI(t, "reproduce", "--quick", "--device", "cuda", "--no-tf32", "--out", out)
	want := "holds a cpu run (stage teacher); this run is on cuda"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	ents, err := os.ReadDir(out)
	if err != nil || len(ents) != 1 {
		t.Errorf("the refused run wrote into %s: %v (%v)", out, ents, err)
	}
	if b, err := os.ReadFile(marker); err != nil || !strings.Contains(string(b), "0123456789abcdef") {
		t.Errorf("the CPU run's marker changed: %s %v", b, err)
	}
}
