//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reproduce --device cuda in the CPU build fails at once, naming the build
// that has CUDA, before any stage: the run directory is not even created.
func TestReproduceDeviceWithoutCUDA(t *testing.T) {
	for i, tc := range []struct {
		args   []string
		reason string
	}{
		{[]string{"--device", "cuda"}, "the CPU build says which build runs on the GPU"},
		{[]string{"--device", "CUDA", "--no-tf32"}, "the device name is case-insensitive, and --no-tf32 goes with it"},
	} {
		out := filepath.Join(t.TempDir(), "run"+string(rune('0'+i)))
		_, err := runCLI(t, append([]string{"reproduce", "--quick", "--out", out}, tc.args...)...)
		want := "reproduce: --device cuda: this binary was built without CUDA; rebuild with -tags minitron_cuda (make build-cuda"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.reason, err, want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: %s was created (%v): work started before the device check", tc.reason, out, err)
		}
	}
}
