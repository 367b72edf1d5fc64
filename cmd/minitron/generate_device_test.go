package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// generate's --device, --bf16 and --no-tf32 in every build: an unknown
// device and --bf16 off the GPU are refused before the model is read (the
// path does not exist); --no-tf32 on the CPU, whose products are full f32
// already, changes nothing (as on the eval commands).
func TestGenerateDeviceFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-model")
	for _, c := range []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"--device", "gpu"}, `--device "gpu": want cpu or cuda`, "unknown device"},
		{[]string{"--bf16"}, "--bf16 needs --device cuda", "--bf16 on the CPU"},
		{[]string{"--device", "cpu", "--bf16", "--temperature", "0.8"}, "--bf16 needs --device cuda", "--bf16 with --device cpu, sampled"},
	} {
		args := append([]string{"generate", "--model", missing, "--ids", "5,9,11", "--max-new-tokens", "3"}, c.args...)
		if _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.reason, err, c.want)
		}
	}
	args := []string{"generate", "--model", goldenNemotron, "--ids", "5,9,11", "--max-new-tokens", "4", "--json"}
	plain, err := runCLI(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := runCLI(t, append(args, "--device", "cpu", "--no-tf32")...)
	if err != nil {
		t.Fatal(err)
	}
	if cpu != plain {
		t.Errorf("--device cpu --no-tf32 changed the output:\n%s\nvs\n%s", cpu, plain)
	}
}
