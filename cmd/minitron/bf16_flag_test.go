package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// --bf16 (bf16-only device weights) without --device cuda is refused by
// name on every command that takes it, before any model or data is read
// (the paths do not exist), in every build.
func TestBF16NeedsDevice(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model")
	const want = "--bf16 needs --device cuda"
	for _, c := range []struct {
		args   []string
		reason string
	}{
		{[]string{"importance", "--model", missing, "--data", missing, "--out", missing + ".json", "--bf16"}, "importance on the CPU"},
		{[]string{"eval", "nll", "--model", missing, "--ids", "1,2,3", "--bf16"}, "eval nll"},
		{[]string{"eval", "ppl", "--model", missing, "--text", missing, "--seq-len", "8", "--device", "cpu", "--bf16"}, "eval ppl with --device cpu"},
		{[]string{"eval", "tasks", "--model", missing, "--task", "hellaswag=" + missing, "--bf16"}, "eval tasks"},
		{[]string{"bench", "forward", "--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--ffn", "64",
			"--vocab", "64", "--batch", "1", "--seq", "8", "--bf16"}, "bench forward: never time f32 as bf16"},
	} {
		_, err := runCLI(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", c.reason, err, want)
		}
	}
}
