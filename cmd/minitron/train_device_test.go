//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func TestTrainDeviceWithoutCUDA(t *testing.T) {
	dir := t.TempDir()
	teacher, student := filepath.Join(dir, "teacher"), filepath.Join(dir, "student")
	tinyCheckpoint(t, teacher, model.Nemotron, 64, 1)
	tinyCheckpoint(t, student, model.Nemotron, 32, 2)
	train := filepath.Join(dir, "train")
	writeTinyData(t, train, 5, 100, 64, 1)
	common := []string{"--data", train, "--seq-len", "16", "--micro-batch", "2", "--steps", "1", "--out", filepath.Join(dir, "o")}
	for _, tc := range []struct {
		args   []string
		want   string
		reason string
	}{
		{append([]string{"distill", "--teacher", teacher, "--student", student, "--device", "cuda"}, common...),
			"built without CUDA; rebuild with -tags minitron_cuda", "distill in the CPU build names the build to use"},
		{append([]string{"train", "--model", student, "--device", "cuda"}, common...),
			"built without CUDA; rebuild with -tags minitron_cuda", "train likewise"},
		{append([]string{"train", "--model", student, "--device", "tpu"}, common...),
			`device "tpu": want cpu or cuda`, "unknown device (device.Parse's message, which the CLI may prefix with --)"},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.reason, err, tc.want)
		}
	}
}
