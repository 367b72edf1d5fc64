// Package mpitest runs a test binary's own test as the ranks of an mpirun
// job, for the tests of code built with -tags minitron_mpi.
package mpitest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Rank reports whether this process is a rank that mpirun started (the
// test body then runs as that rank).
func Rank() bool { return os.Getenv("OMPI_COMM_WORLD_SIZE") != "" }

// Args are mpirun's arguments for np ranks on this machine: root may run
// them and more ranks than cores are allowed (CI has 2 cores).
func Args(np int) []string {
	return []string{"-np", strconv.Itoa(np), "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1"}
}

// Command is mpirun starting np ranks of name with args (and env added).
func Command(ctx context.Context, np int, env []string, name string, args ...string) *exec.Cmd {
	a := append(Args(np), name)
	cmd := exec.CommandContext(ctx, "mpirun", append(a, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Run starts np ranks of this test binary running test (a -test.run
// pattern) and returns their combined output; it fails t if mpirun fails.
// Without mpirun the test is skipped (make test installs Open MPI).
func Run(t *testing.T, np int, test string, env ...string) string {
	t.Helper()
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev; make test installs them)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := Command(ctx, np, env, os.Args[0], "-test.run", test, "-test.v", "-test.count=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("mpirun -np %d %s: %v\n%s", np, test, err, out.String())
	}
	return out.String()
}
