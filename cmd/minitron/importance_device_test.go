//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// importance --device: cuda in the CPU build names the build to use, an
// unknown device is refused, and neither writes a scores file.
func TestImportanceDeviceWithoutCUDA(t *testing.T) {
	dir := t.TempDir()
	ck := filepath.Join(dir, "model")
	tinyCheckpoint(t, ck, model.Nemotron, 32, 1)
	prefix := filepath.Join(dir, "data")
	writeTinyData(t, prefix, 5, 100, 64, 1)
	for i, tc := range []struct {
		device string
		want   string
		reason string
	}{
		{"cuda", "--device cuda: this binary was built without CUDA; rebuild with -tags minitron_cuda (make build-cuda",
			"the CPU build says which build runs on the GPU"},
		{"CUDA", "built without CUDA", "the device name is case-insensitive"},
		{"tpu", `--device "tpu": want cpu or cuda`, "unknown device"},
	} {
		out := filepath.Join(dir, "s"+string(rune('0'+i))+".json")
		_, err := runCLI(t, "importance", "--model", ck, "--data", prefix, "--samples", "2", "--seq-len", "8",
			"--layer-metrics", "none", "--device", tc.device, "--out", out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.reason, err, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: wrote %s", tc.reason, out)
		}
	}
	// --device cpu is today's path.
	out := filepath.Join(dir, "cpu.json")
	if _, err := runCLI(t, "importance", "--model", ck, "--data", prefix, "--samples", "2", "--seq-len", "8",
		"--layer-metrics", "none", "--device", "cpu", "--out", out); err != nil {
		t.Fatalf("--device cpu: %v", err)
	}
}
