//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/prune"
)

// Ctrl-C during prune's output write stops it and removes the half-written
// output: nothing at --out, no temporary beside it.
func TestPruneSIGINTLeavesNothing(t *testing.T) {
	dir, _, scores := scoredPruneFixture(t, 2, 1)
	student := filepath.Join(filepath.Dir(dir), "student")
	prune.StagingHook = func(ctx context.Context, _ string) {
		syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
	}
	defer func() { prune.StagingHook = nil }()
	po := &PruneOptions{Options: prune.Options{ModelDir: dir, ScoresPath: scores, OutDir: student,
		Target: prune.Target{Hidden: 32}, EvalData: "none"}, ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "auto"}
	err := runPrune(context.Background(), po, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("prune after SIGINT: %v, want an interruption error", err)
	}
	if _, err := os.Stat(student); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--out exists after an interrupted prune (%v)", err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(student), ".student.tmp*"))
	if len(left) > 0 {
		t.Errorf("temporaries left: %v", left)
	}
}
