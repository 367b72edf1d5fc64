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
	"github.com/minitron-dev/minitron/prune"
)

// fakeDistill "trains" by copying the pruned checkpoint and scores it by
// its parameter count, so the largest candidate must win.
func fakeDistill(ctx context.Context, teacherDir, studentDir, outDir, data string, steps int) (float64, string, error) {
	ck := filepath.Join(outDir, "final")
	if err := os.CopyFS(ck, os.DirFS(studentDir)); err != nil {
		return 0, "", err
	}
	cfg, err := model.LoadConfig(studentDir)
	if err != nil {
		return 0, "", err
	}
	return 1e6 / float64(cfg.ParamCounts().Total), ck, nil
}

func TestSearchRanksAndKeepsWinner(t *testing.T) {
	dir, prefix, scores := scoredPruneFixture(t, 4, 2)
	root := filepath.Dir(dir)
	old := searchDistill
	searchDistill = fakeDistill
	defer func() { searchDistill = old }()
	out := filepath.Join(root, "search")
	o := &SearchOptions{SearchOptions: prune.SearchOptions{ModelDir: dir, ScoresPath: scores, Data: prefix, Tolerance: 0.1, Steps: 5, MaxCandidates: 3, OutDir: out,
		Prune: prune.Options{EvalSamples: 2, EvalSeqLen: 8}}, Params: "50K", HeadMode: "per-group", Metric: "auto", Weights: "auto"}
	var stdout bytes.Buffer
	if err := runSearch(context.Background(), o, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var res prune.SearchResult
	b, err := os.ReadFile(filepath.Join(out, "search.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Candidates) != 3 {
		t.Fatalf("%d candidates, want 3", len(res.Candidates))
	}
	var best prune.Candidate
	for _, c := range res.Candidates {
		if c.Params > best.Params {
			best = c
		}
		if c.PrunedLoss <= 0 {
			t.Errorf("%s has no zero-shot loss", c.Name)
		}
	}
	if res.Winner != best.Name {
		t.Errorf("winner %s, want the largest candidate %s", res.Winner, best.Name)
	}
	if res.WinnerDir != filepath.Join(out, "winner", "final") {
		t.Errorf("winner_dir %s", res.WinnerDir)
	}
	cfg, err := model.LoadConfig(res.WinnerDir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HiddenSize != best.Target.Hidden || cfg.IntermediateSize != best.Target.FFN || cfg.NumLayers != best.Target.Layers {
		t.Errorf("winner checkpoint has %d/%d/%d, want %v", cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers, best.Target)
	}
	md, _ := os.ReadFile(filepath.Join(out, "search.md"))
	if !strings.Contains(string(md), "| 1 | "+best.Name) {
		t.Errorf("search.md does not rank the winner first:\n%s", md)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 3 {
		t.Errorf("out has %d entries, want search.json, search.md, winner", len(ents))
	}
}

// The real distillation path: two candidates, three steps each.
func TestSearchWithDistillRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs distill.Run per candidate")
	}
	res := realSearch(t, "cpu")
	if _, err := model.OpenCheckpoint(res.WinnerDir); err != nil {
		t.Errorf("winner_dir is not a checkpoint: %v", err)
	}
}

// realSearch runs a search of two candidates, three distillation steps
// each, with the candidates distilled on device, and checks every candidate
// got a distilled loss.
func realSearch(t *testing.T, device string) prune.SearchResult {
	t.Helper()
	dir, prefix, scores := scoredPruneFixture(t, 4, 2)
	root := filepath.Dir(dir)
	out := filepath.Join(root, "search")
	o := &SearchOptions{SearchOptions: prune.SearchOptions{ModelDir: dir, ScoresPath: scores, Data: prefix, Tolerance: 0.1, Steps: 3, MaxCandidates: 2, OutDir: out,
		Prune: prune.Options{EvalSamples: 2, EvalSeqLen: 8}}, Params: "50K", HeadMode: "per-group", Metric: "auto", Weights: "auto",
		SeqLen: 16, MicroBatch: 2, LR: 1e-3, ValBatches: 2, Device: device, NoTF32: device == "cuda"}
	var stdout bytes.Buffer
	if err := runSearch(context.Background(), o, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "search.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res prune.SearchResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Candidates {
		if c.Err != "" || !(c.DistilledLoss > 0) {
			t.Errorf("%s: distilled loss %v, error %q", c.Name, c.DistilledLoss, c.Err)
		}
	}
	t.Log(stdout.String())
	return res
}
