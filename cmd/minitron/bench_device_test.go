//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"strings"
	"testing"
)

func TestBenchTrainDevice(t *testing.T) {
	for _, c := range []struct {
		device, want, reason string
		extra                []string
	}{
		{"cuda", "built without CUDA; rebuild with -tags", "the CPU build names the build to use", nil},
		{"CUDA", "built without CUDA; rebuild with -tags", "device names are case-insensitive", nil},
		{"tpu", `--device "tpu": want cpu or cuda`, "unknown device", nil},
		{"cpu", "--bf16 needs --device cuda", "the CPU trainer has no bf16 mode; never time f32 silently", []string{"--bf16"}},
	} {
		args := append([]string{"bench", "train", "--device", c.device, "--layers", "1", "--hidden", "32", "--heads", "2",
			"--kv-heads", "1", "--ffn", "64", "--vocab", "64", "--batch", "1", "--seq", "8"}, c.extra...)
		_, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s (%s): error %v, want it to contain %q", c.device, c.reason, err, c.want)
		}
	}
}
