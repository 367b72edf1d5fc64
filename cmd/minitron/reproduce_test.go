package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pipeline itself is tested in internal/reproduce (TestReproduceQuick
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
	} {
		_, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.reason, err, tc.want)
		}
	}
}
