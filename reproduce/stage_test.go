package reproduce

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRunStageCachesAndReruns(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "teacher")
	runs := 0
	fn := func(tmp string) error {
		runs++
		return os.WriteFile(filepath.Join(tmp, "out.txt"), []byte("x"), 0o644)
	}
	for i, tc := range []struct {
		key      string
		wantSkip bool
		wantRuns int
		reason   string
	}{
		{"k1", false, 1, "first run does the work"},
		{"k1", true, 1, "same key is cached"},
		{"k2", false, 2, "changed settings rerun the stage"},
	} {
		skipped, err := RunStage("teacher", dir, tc.key, fn)
		if err != nil {
			t.Fatal(err)
		}
		if skipped != tc.wantSkip || runs != tc.wantRuns {
			t.Fatalf("case %d (%s): skipped=%v runs=%d", i, tc.reason, skipped, runs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.txt")); err != nil {
		t.Fatal(err)
	}
}

func TestRunStageFailureLeavesNoResult(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	_, err := RunStage("s", dir, "k", func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "half"), nil, 0o644)
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("want error")
	}
	if StageDone(dir, "k") {
		t.Fatal("failed stage marked done")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("failed stage left its directory in place")
	}
}
