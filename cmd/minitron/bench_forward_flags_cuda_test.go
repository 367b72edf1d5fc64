//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"strings"
	"testing"
)

// bench forward --device cuda checks --weights as the CPU bench does (a
// bad mode is an error, not silently replaced by streaming) and takes
// --threads and an explicit mode.
func TestBenchForwardFlagsDeviceCUDA(t *testing.T) {
	shape := []string{"bench", "forward", "--device", "cuda", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1",
		"--ffn", "64", "--vocab", "100", "--batch", "1", "--seq", "8", "--iters", "1", "--warmup", "0", "--json"}
	if _, err := runCLI(t, append(shape, "--weights", "bogus")...); err == nil || !strings.Contains(err.Error(), "--weights") {
		t.Errorf("--weights bogus: error %v, want one naming --weights", err)
	}
	if _, err := runCLI(t, append(shape, "--weights", "resident", "--threads", "1")...); err != nil {
		t.Errorf("--weights resident --threads 1: %v", err)
	}
}
