package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A report or plot path in a directory that does not exist yet is created,
// and a path that cannot be written fails before any model or run is read
// (the bad --model/run given alongside would otherwise be the error).
func TestEvalOutputsInNewDirectories(t *testing.T) {
	m := tinyEvalModel(t, true)
	run := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "metrics.jsonl"), []byte(`{"step":1,"loss":3.5}`+"\n"+`{"step":2,"loss":3.1,"val_loss":3.3}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	aFile := filepath.Join(root, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := "hellaswag=" + filepath.Join(evalFixtures, "tasks", "hellaswag.jsonl")
	missing := filepath.Join(root, "no-such-model")
	cases := []struct {
		reason  string
		args    []string
		wantErr string   // empty: success
		files   []string // written on success
	}{
		{"eval tasks --out in a new directory is created with its JSON twin",
			[]string{"eval", "tasks", "--model", m, "--task", task, "--limit", "1", "--out", filepath.Join(root, "rep", "sub", "report.md"), "--samples", filepath.Join(root, "smp", "s.jsonl")},
			"", []string{filepath.Join(root, "rep", "sub", "report.md"), filepath.Join(root, "rep", "sub", "report.json"), filepath.Join(root, "smp", "s.jsonl")}},
		{"eval plot --out in a new directory is created",
			[]string{"eval", "plot", run, "--out", filepath.Join(root, "plots", "x.png")},
			"", []string{filepath.Join(root, "plots", "x.png")}},
		{"eval tasks --out under a regular file fails before the model is loaded",
			[]string{"eval", "tasks", "--model", missing, "--task", task, "--out", filepath.Join(aFile, "report.md")},
			"--out", nil},
		{"eval tasks --samples under a regular file fails before the model is loaded",
			[]string{"eval", "tasks", "--model", missing, "--task", task, "--samples", filepath.Join(aFile, "s.jsonl")},
			"--samples", nil},
		{"eval tasks --out naming a directory fails before the model is loaded",
			[]string{"eval", "tasks", "--model", missing, "--task", task, "--out", root},
			"is a directory", nil},
		{"eval plot --out under a regular file fails before the runs are read",
			[]string{"eval", "plot", filepath.Join(root, "no-such-run"), "--out", filepath.Join(aFile, "x.png")},
			"--out", nil},
	}
	for _, c := range cases {
		got, err := runCLI(t, c.args...)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v\n%s", c.reason, err, got)
				continue
			}
			for _, f := range c.files {
				if st, err := os.Stat(f); err != nil || st.Size() == 0 {
					t.Errorf("%s: %s not written (%v)", c.reason, f, err)
				}
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", c.reason, err, c.wantErr)
		}
	}
}
