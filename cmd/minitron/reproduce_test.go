package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pipeline itself is tested in reproduce (TestReproduceQuick
// runs what --quick runs); these check the command's argument handling.
func TestReproduceCLIErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		want   string
		reason string
	}{
		{[]string{"reproduce", "extra"}, "unknown command", "no positional arguments"},
		{[]string{"reproduce", "--quick", "--out", filepath.Join(file, "run")}, "not a directory", "the run directory cannot be created under a file"},
		{[]string{"reproduce", "--threads", "x"}, "invalid argument", "threads is a number"},
		{[]string{"reproduce", "--quick", "--device", "tpu", "--out", filepath.Join(t.TempDir(), "run")}, `--device "tpu": want cpu or cuda`, "an unknown device"},
		{[]string{"reproduce", "--quick", "--no-tf32", "--out", filepath.Join(t.TempDir(), "run")}, "--no-tf32 needs --device cuda", "TF32 is a GPU setting"},
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.reason, err, tc.want)
		}
	}
}

func TestReproduceOut(t *testing.T) {
	for _, tc := range []struct {
		device, out string
		given       bool
		want        string
		reason      string
	}{
		{"cpu", reproduceOutCPU, false, "runs/default", "the CPU run's directory is unchanged"},
		{"cuda", reproduceOutCPU, false, "runs/cuda", "a cuda run gets its own directory"},
		{"cuda", "runs/x", true, "runs/x", "--out wins"},
		{"cpu", "runs/x", true, "runs/x", "--out wins on the CPU too"},
	} {
		if got := reproduceOut(&ReproduceOptions{Device: tc.device, Out: tc.out}, tc.given); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.reason, got, tc.want)
		}
	}
}
