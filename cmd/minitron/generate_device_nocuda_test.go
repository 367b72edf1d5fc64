//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// generate --device cuda in the CPU build fails before the model or the
// tokenizer is read (neither exists), naming the build to use, greedy or
// sampled, with or without --bf16 and --no-tf32.
func TestGenerateDeviceWithoutCUDA(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model")
	const notBuilt = "--device cuda: this binary was built without CUDA; rebuild with -tags minitron_cuda (make build-cuda"
	for _, c := range []struct {
		args   []string
		reason string
	}{
		{[]string{"--ids", "5,9,11"}, "greedy from ids"},
		{[]string{"--prompt", "hello", "--temperature", "0.8", "--seed", "1"}, "sampled from a text prompt (no tokenizer there)"},
		{[]string{"--ids", "5,9,11", "--bf16", "--no-tf32"}, "--bf16 and --no-tf32"},
	} {
		args := append([]string{"generate", "--model", missing, "--device", "cuda", "--max-new-tokens", "3"}, c.args...)
		if _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), notBuilt) {
			t.Errorf("%s: error %v, want it to contain %q", c.reason, err, notBuilt)
		}
	}
}
