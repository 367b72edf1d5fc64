//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --device on the eval commands and bench forward in the CPU build: cuda
// fails before any model or data is read, with an error naming the build
// to use; an unknown device is refused by name.
func TestEvalDeviceWithoutCUDA(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model") // never opened: the device check comes first
	const notBuilt = "--device cuda: this binary was built without CUDA; rebuild with -tags minitron_cuda (make build-cuda"
	bench := []string{"bench", "forward", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1",
		"--ffn", "64", "--vocab", "64", "--batch", "1", "--seq", "8", "--iters", "1", "--warmup", "0"}
	for _, c := range []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"eval", "nll", "--model", missing, "--ids", "1,2,3", "--device", "cuda"}, notBuilt, "eval nll names the build"},
		{[]string{"eval", "ppl", "--model", missing, "--text", missing, "--seq-len", "8", "--device", "cuda"}, notBuilt, "eval ppl names the build"},
		{[]string{"eval", "tasks", "--model", missing, "--task", "hellaswag=" + missing, "--device", "cuda"}, notBuilt, "eval tasks names the build"},
		{append(bench, "--device", "cuda"), notBuilt, "bench forward names the build"},
		{[]string{"eval", "nll", "--model", missing, "--ids", "1,2,3", "--device", "gpu"}, `--device "gpu": want cpu or cuda`, "eval nll: unknown device"},
		{[]string{"eval", "ppl", "--model", missing, "--text", missing, "--seq-len", "8", "--device", "tpu"}, `--device "tpu": want cpu or cuda`, "eval ppl: unknown device"},
		{[]string{"eval", "tasks", "--model", missing, "--task", "hellaswag=" + missing, "--device", "tpu"}, `--device "tpu": want cpu or cuda`, "eval tasks: unknown device"},
		{append(bench, "--device", "tpu"), `--device "tpu": want cpu or cuda`, "bench forward: unknown device"},
	} {
		_, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.reason, err, c.want)
		}
	}
}

// --device cpu is the default path: same numbers as without the flag.
func TestEvalNLLDeviceCPU(t *testing.T) {
	m := tinyEvalModel(t, false)
	a, err := runCLI(t, "eval", "nll", "--model", m, "--ids", "5,17,99,4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := runCLI(t, "eval", "nll", "--model", m, "--ids", "5,17,99,4", "--json", "--device", "cpu")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("--device cpu changed the output:\n%s\nvs\n%s", b, a)
	}
}
