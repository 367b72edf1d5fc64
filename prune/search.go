package prune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
)

// SearchSpace is the step grid of candidate architectures. Zero fields get
// defaults from the teacher (DefaultSearchSpace).
type SearchSpace struct {
	LayerStep, MinLayers  int
	HeadStep, MinHeads    int
	FFNStep, MinFFN       int
	HiddenStep, MinHidden int
}

// DefaultSearchSpace follows the papers' coarse grids: layers from the
// teacher's down to 3/4 of them in steps of 1 (of L/16 above 16 layers),
// query heads from the teacher's down to half in steps of the KV-group
// count (every group keeps the same number), FFN and hidden from the
// teacher's down to a quarter on the GridStep grid (hidden 6144 → step 128,
// FFN 24576 → step 256, so Minitron-8B and 4B are on it).
func DefaultSearchSpace(t *model.Config) SearchSpace {
	return SearchSpace{
		LayerStep: max(1, t.NumLayers/16), MinLayers: max(1, (3*t.NumLayers+3)/4),
		HeadStep: t.NumKVHeads, MinHeads: max(t.NumKVHeads, t.NumHeads/2),
		FFNStep: GridStep(t.IntermediateSize), MinFFN: max(1, t.IntermediateSize/4),
		HiddenStep: GridStep(t.HiddenSize), MinHidden: max(1, t.HiddenSize/4),
	}
}

func (s SearchSpace) fill(t *model.Config) SearchSpace {
	d := DefaultSearchSpace(t)
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&s.LayerStep, d.LayerStep)
	pick(&s.MinLayers, d.MinLayers)
	pick(&s.HeadStep, d.HeadStep)
	pick(&s.MinHeads, d.MinHeads)
	pick(&s.FFNStep, d.FFNStep)
	pick(&s.MinFFN, d.MinFFN)
	pick(&s.HiddenStep, d.HiddenStep)
	pick(&s.MinHidden, d.MinHidden)
	return s
}

// Candidate is one architecture of a search.
type Candidate struct {
	Name   string `json:"name"`
	Target Target `json:"target"`
	Params int64  `json:"params"`
	// Filled by the search:
	PrunedLoss    float64 `json:"pruned_loss,omitempty"`    // zero-shot, before distillation
	DistilledLoss float64 `json:"distilled_loss,omitempty"` // after the brief distillation
	Rank          int     `json:"rank,omitempty"`
	Checkpoint    string  `json:"-"` // distilled checkpoint, relative to the candidate's run
	Seconds       float64 `json:"seconds,omitempty"`
	Err           string  `json:"error,omitempty"`
}

// Candidates enumerates the grid's architectures whose parameter count is
// within budget·(1±tol), nearest to the budget first, at most maxN (0: all).
// Query heads stay a multiple of the KV heads, which are kept.
func Candidates(teacher *model.Config, budget int64, tol float64, space SearchSpace, maxN int) ([]Candidate, error) {
	if budget <= 0 {
		return nil, errors.New("parameter budget must be positive")
	}
	if tp := teacher.ParamCounts().Total; budget >= tp {
		return nil, fmt.Errorf("parameter budget %d is not below the teacher's %d parameters", budget, tp)
	}
	s := space.fill(teacher)
	lo, hi := float64(budget)*(1-tol), float64(budget)*(1+tol)
	var out []Candidate
	for l := teacher.NumLayers; l >= s.MinLayers; l -= s.LayerStep {
		for h := teacher.NumHeads; h >= s.MinHeads; h -= s.HeadStep {
			if h%teacher.NumKVHeads != 0 {
				continue
			}
			for f := teacher.IntermediateSize; f >= s.MinFFN; f -= s.FFNStep {
				for d := teacher.HiddenSize; d >= s.MinHidden; d -= s.HiddenStep {
					t := Target{Layers: l, Hidden: d, Heads: h, KVHeads: teacher.NumKVHeads, FFN: f}
					p := t.Params(teacher)
					if float64(p) < lo || float64(p) > hi {
						continue
					}
					out = append(out, Candidate{Name: fmt.Sprintf("L%d-H%d-A%d-F%d", l, d, h, f), Target: t, Params: p})
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no architecture on the search grid has %s ± %.0f%% parameters (teacher %s): widen the tolerance or change the budget",
			model.FormatParams(budget), tol*100, model.FormatParams(teacher.ParamCounts().Total))
	}
	sort.SliceStable(out, func(i, j int) bool {
		return math.Abs(float64(out[i].Params-budget)) < math.Abs(float64(out[j].Params-budget))
	})
	if maxN > 0 && len(out) > maxN {
		out = out[:maxN]
	}
	return out, nil
}

// DistillFunc briefly distills student (a checkpoint directory) from the
// teacher for steps optimizer steps on the data prefix, writes the run to
// outDir and returns the validation loss and the trained student's
// checkpoint directory (outDir itself or a directory inside it).
type DistillFunc func(ctx context.Context, teacherDir, studentDir, outDir, data string, steps int) (valLoss float64, checkpoint string, err error)

// SearchOptions configure Search.
type SearchOptions struct {
	ModelDir, ScoresPath, OutDir, Data string
	Params                             int64
	Tolerance                          float64 // default 0.05
	Steps                              int     // distillation steps per candidate (paper: ~400)
	MaxCandidates                      int     // default 8
	Space                              SearchSpace
	Prune                              Options // head mode, layer metric, eval samples…; shape fields are set per candidate
	Distill                            DistillFunc
	KeepAll                            bool // keep every candidate's checkpoint, not only the winner's
	DryRun                             bool
	Log                                io.Writer
}

// SearchResult is written as search.json and search.md.
type SearchResult struct {
	Teacher   string  `json:"teacher"`
	Budget    int64   `json:"budget"`
	Tolerance float64 `json:"tolerance"`
	Steps     int     `json:"steps"`
	// TeacherLoss is the teacher's loss on the pruned-loss eval samples.
	TeacherLoss float64     `json:"teacher_loss,omitempty"`
	Candidates  []Candidate `json:"candidates"`
	Winner      string      `json:"winner,omitempty"`
	WinnerDir   string      `json:"winner_dir,omitempty"`
}

// Search enumerates candidates, prunes each with the scores, distills each
// briefly, ranks them by validation loss after distillation and keeps the
// winner's checkpoint in OutDir/winner.
func Search(ctx context.Context, o SearchOptions) (*SearchResult, error) {
	if o.Tolerance <= 0 {
		o.Tolerance = 0.05
	}
	if o.MaxCandidates == 0 {
		o.MaxCandidates = 8
	}
	teacher, err := model.LoadConfig(filepath.Join(o.ModelDir, model.ConfigFile))
	if err != nil {
		return nil, err
	}
	cands, err := Candidates(teacher, o.Params, o.Tolerance, o.Space, o.MaxCandidates)
	if err != nil {
		return nil, err
	}
	res := &SearchResult{Teacher: o.ModelDir, Budget: o.Params, Tolerance: o.Tolerance, Steps: o.Steps, Candidates: cands}
	if o.DryRun {
		return res, nil
	}
	if o.Distill == nil {
		return nil, errors.New("search: no distillation available")
	}
	if o.Steps <= 0 {
		return nil, errors.New("search: Steps must be positive")
	}
	if o.OutDir == "" || o.ScoresPath == "" || o.Data == "" {
		return nil, errors.New("search needs OutDir, ScoresPath and Data")
	}
	if err := checkOutDir(o.OutDir); err != nil {
		return nil, err
	}
	// Check the scores once, up front, so no candidate is pruned from a
	// mismatched file.
	if _, err := importance.Load(o.ScoresPath); err != nil {
		return nil, err
	}
	stage, err := newStaging(o.OutDir)
	if err != nil {
		return nil, err
	}
	defer stage.cleanup()
	tmp := stage.dir
	for i := range res.Candidates {
		c := &res.Candidates[i]
		start := time.Now()
		if o.Log != nil {
			fmt.Fprintf(o.Log, "[%d/%d] %s (%s params)\n", i+1, len(res.Candidates), c.Name, model.FormatParams(c.Params))
		}
		po := o.Prune
		po.ModelDir, po.ScoresPath, po.Method = o.ModelDir, o.ScoresPath, MethodImportance
		po.Target, po.Preset, po.Params, po.DryRun, po.Log = c.Target, "", 0, false, nil
		po.OutDir = filepath.Join(tmp, "pruned", c.Name)
		if po.EvalData == "" {
			po.EvalData = o.Data
		}
		if err := os.MkdirAll(filepath.Dir(po.OutDir), 0o755); err != nil {
			return nil, err
		}
		rep, err := Run(ctx, po)
		if err != nil {
			return nil, fmt.Errorf("candidate %s: prune: %w", c.Name, err)
		}
		if rep.Eval != nil {
			c.PrunedLoss = rep.Eval.StudentLoss
			o.Prune.TeacherLoss = rep.Eval.TeacherLoss // same samples for every candidate
			res.TeacherLoss = rep.Eval.TeacherLoss
		}
		dist := filepath.Join(tmp, "distilled", c.Name)
		if err := os.MkdirAll(filepath.Dir(dist), 0o755); err != nil {
			return nil, err
		}
		var ck string
		c.DistilledLoss, ck, err = o.Distill(ctx, o.ModelDir, po.OutDir, dist, o.Data, o.Steps)
		if err == nil {
			if c.Checkpoint, err = filepath.Rel(dist, ck); err != nil || strings.HasPrefix(c.Checkpoint, "..") {
				err = fmt.Errorf("distilled checkpoint %s is outside the candidate's run %s", ck, dist)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.Err = err.Error()
			c.DistilledLoss = math.Inf(1)
		}
		c.Seconds = time.Since(start).Seconds()
		if !o.KeepAll {
			os.RemoveAll(po.OutDir)
		}
	}
	order := make([]int, len(res.Candidates))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return res.Candidates[order[a]].DistilledLoss < res.Candidates[order[b]].DistilledLoss
	})
	for r, i := range order {
		res.Candidates[i].Rank = r + 1
	}
	w := res.Candidates[order[0]]
	if w.Err != "" {
		return nil, fmt.Errorf("search: every candidate failed to distill; first error: %s", w.Err)
	}
	res.Winner = w.Name
	if err := os.Rename(filepath.Join(tmp, "distilled", w.Name), filepath.Join(tmp, "winner")); err != nil {
		return nil, err
	}
	if !o.KeepAll {
		os.RemoveAll(filepath.Join(tmp, "distilled"))
		os.RemoveAll(filepath.Join(tmp, "pruned"))
	}
	res.WinnerDir = filepath.Join(o.OutDir, "winner", w.Checkpoint)
	js, _ := json.MarshalIndent(res, "", " ")
	if err := atomicfile.WriteFile(filepath.Join(tmp, "search.json"), append(js, '\n'), nil); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "search.md"), []byte(res.Markdown()), nil); err != nil {
		return nil, err
	}
	if err := stage.commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// Markdown renders the candidate table (ranked when distilled).
func (r *SearchResult) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Architecture search: %s → %s ± %.0f%%\n\n", r.Teacher, model.FormatParams(r.Budget), r.Tolerance*100)
	cands := append([]Candidate(nil), r.Candidates...)
	ranked := r.Winner != ""
	if ranked {
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].Rank < cands[j].Rank })
		fmt.Fprintf(&b, "%d distillation steps per candidate. Winner: **%s** (%s).\n", r.Steps, r.Winner, r.WinnerDir)
		fmt.Fprintf(&b, "Pruned loss: held-out loss right after pruning (prune's eval samples; the teacher's is %.4f); distilled loss: the distillation's validation loss, which ranks.\n\n", r.TeacherLoss)
		b.WriteString("| rank | candidate | layers | hidden | heads | kv | ffn | params | pruned loss | distilled loss |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	} else {
		b.WriteString("| candidate | layers | hidden | heads | kv | ffn | params |\n|---|---:|---:|---:|---:|---:|---:|\n")
	}
	for _, c := range cands {
		t := c.Target
		if ranked {
			dl := fmt.Sprintf("%.4f", c.DistilledLoss)
			if c.Err != "" {
				dl = "failed: " + c.Err
			}
			fmt.Fprintf(&b, "| %d | %s | %d | %d | %d | %d | %d | %s | %.4f | %s |\n", c.Rank, c.Name, t.Layers, t.Hidden, t.Heads, t.KVHeads, t.FFN, model.FormatParams(c.Params), c.PrunedLoss, dl)
		} else {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %s (%d) |\n", c.Name, t.Layers, t.Hidden, t.Heads, t.KVHeads, t.FFN, model.FormatParams(c.Params), c.Params)
		}
	}
	return b.String()
}
