//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"strings"
	"testing"
)

// search checks --device before it reads anything (no model here).
func TestSearchDevice(t *testing.T) {
	for _, c := range []struct {
		args         []string
		want, reason string
	}{
		{[]string{"--device", "cuda"}, "built without CUDA", "the CPU build names the build to use"},
		{[]string{"--device", "CUDA"}, "built without CUDA", "device names are case-insensitive, as importance and reproduce take them"},
		{[]string{"--device", "tpu"}, `--device "tpu": want cpu or cuda`, "unknown device"},
		{[]string{"--bf16"}, "needs --device cuda", "bf16 distillation exists only on the device"},
	} {
		args := append([]string{"search", "--model", "/nonexistent", "--params", "1M", "--dry-run"}, c.args...)
		_, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v (%s): error %v, want it to contain %q", c.args, c.reason, err, c.want)
		}
	}
}
