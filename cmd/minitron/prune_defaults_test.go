package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// What a new user meets with prune's defaults: scores made on a plain
// Megatron prefix (no _val split) and the help's --drop-layers example.
func TestPruneDefaultsWork(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	// A plain Megatron prefix, as another tool writes it: no _train/_val.
	plain := filepath.Join(root, "plain")
	for _, ext := range []string{".bin", ".idx"} {
		b, err := os.ReadFile(prefix + "_train" + ext)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(plain+ext, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scores := filepath.Join(root, "plain-scores.json")
	if err := runImportance(context.Background(), &ImportanceOptions{Model: dir, Data: plain, Samples: 2, SeqLen: 8, Batch: 1, Out: scores,
		AggBatch: "l2", AggSeq: "mean", MLPPoint: "post", LayerMetrics: "bi", Seed: 1, Weights: "auto"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		reason   string
		args     []string
		wantErr  string // empty: success
		layers   int    // student layers on success
		wantEval bool   // the report holds the held-out comparison
		wantOut  string // in stdout on success
	}{
		{"scores of a prefix without _val: the held-out comparison is skipped with a note",
			[]string{"--ffn", "64"}, "", 4, false, "held-out loss skipped"},
		{"the help's example: --drop-layers alone implies the layer count",
			[]string{"--drop-layers", "2", "--data", prefix}, "", 3, true, "dropped layers [2]"},
		{"--drop-layers with a matching --layers still works",
			[]string{"--drop-layers", "1-2", "--layers", "2", "--data", "none"}, "", 2, false, "dropped layers [1 2]"},
		{"--drop-layers disagreeing with --layers is refused",
			[]string{"--drop-layers", "1-2", "--layers", "3"}, "DropLayers lists 2 layers", 0, false, ""},
		{"an explicit --data without _val is an error, not a silent skip",
			[]string{"--ffn", "64", "--data", plain}, "no val split", 0, false, ""},
	}
	for i, c := range cases {
		out := filepath.Join(root, "student"+string(rune('a'+i)))
		args := append([]string{"prune", "--model", dir, "--scores", scores, "--out", out}, c.args...)
		got, err := runCLI(t, args...)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", c.reason, err, c.wantErr)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s: %s was written", c.reason, out)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v\n%s", c.reason, err, got)
			continue
		}
		if !strings.Contains(got, c.wantOut) {
			t.Errorf("%s: output lacks %q:\n%s", c.reason, c.wantOut, got)
		}
		cfg, err := model.LoadConfig(out)
		if err != nil {
			t.Errorf("%s: %v", c.reason, err)
			continue
		}
		if cfg.NumLayers != c.layers {
			t.Errorf("%s: student has %d layers, want %d", c.reason, cfg.NumLayers, c.layers)
		}
		b, err := os.ReadFile(filepath.Join(out, "prune_report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Eval        *json.RawMessage `json:"eval"`
			EvalSkipped string           `json:"eval_skipped"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		if (rep.Eval != nil) != c.wantEval {
			t.Errorf("%s: report eval present = %v, want %v", c.reason, rep.Eval != nil, c.wantEval)
		}
		if !c.wantEval && c.args[len(c.args)-1] != "none" && !strings.Contains(rep.EvalSkipped, plain) {
			t.Errorf("%s: report's eval_skipped %q does not name %s", c.reason, rep.EvalSkipped, plain)
		}
	}
}
