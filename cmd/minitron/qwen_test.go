package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/prune"
)

const qwenCases = "../../model/testdata/cases"

// refResult is the reference's NLL of one checkpoint.
type refResult struct {
	Mean float64   `json:"mean_nll"`
	NLL  []float64 `json:"nll"`
}

var (
	torchOnce sync.Once
	haveTorch bool
)

// referenceNLL runs the independent PyTorch reference
// (model/testdata/gen/make_cases.py --nll) over checkpoint directories, one
// Python start for all; ok is false when /usr/bin/python3 with torch is
// not installed.
func referenceNLL(t *testing.T, dirs []string, ids []int) (res []refResult, ok bool) {
	t.Helper()
	const py = "/usr/bin/python3"
	torchOnce.Do(func() { haveTorch = exec.Command(py, "-c", "import torch").Run() == nil })
	if !haveTorch {
		return nil, false
	}
	args := []string{filepath.Join(qwenCases, "..", "gen", "make_cases.py"), "--nll"}
	for _, d := range dirs {
		args = append(args, d, joinIDs(ids))
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("reference on %v: %v\n%s", dirs, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for range dirs {
		var r refResult
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("reference output %q: %v", out, err)
		}
		res = append(res, r)
	}
	return res, true
}

// compareNLL is the largest difference between our NLL and the reference's.
func compareNLL(mean float64, nll []float64, ref refResult) float64 {
	worst := math.Abs(mean - ref.Mean)
	if len(nll) != len(ref.NLL) {
		return math.Inf(1)
	}
	for i := range nll {
		worst = math.Max(worst, math.Abs(nll[i]-ref.NLL[i]))
	}
	return worst
}

// randomTokens writes a train/val dataset of random tokens below vocab.
// scoreTeacher writes random token data for teacher's vocabulary in a
// fresh directory root (dataset prefix root/data) and scores the teacher on
// it (samples × seqLen tokens, BI layer metrics) into root/scores.json.
func scoreTeacher(t *testing.T, teacher string, samples, seqLen, batch int) (tcfg *model.Config, root, prefix, scores string) {
	t.Helper()
	tcfg, err := model.LoadConfig(teacher)
	if err != nil {
		t.Fatal(err)
	}
	root = t.TempDir()
	prefix = filepath.Join(root, "data")
	randomTokens(t, prefix, tcfg.VocabSize)
	scores = filepath.Join(root, "scores.json")
	if err := runImportance(context.Background(), &ImportanceOptions{Model: teacher, Data: prefix, Samples: samples, SeqLen: seqLen, Batch: batch, Out: scores,
		AggBatch: "l2", AggSeq: "mean", MLPPoint: "post", LayerMetrics: "bi", Seed: 1, Weights: "auto"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return tcfg, root, prefix, scores
}

func randomTokens(t *testing.T, prefix string, vocab int) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	for _, split := range []string{"train", "val"} {
		var docs [][]int32
		for d := 0; d < 16; d++ {
			doc := make([]int32, 40)
			for i := range doc {
				doc[i] = int32(r.IntN(vocab))
			}
			docs = append(docs, doc)
		}
		if err := data.WriteIndexed(prefix+"_"+split, data.DTypeForVocab(vocab), docs); err != nil {
			t.Fatal(err)
		}
	}
}

// Acceptance for qwen2 and qwen3: importance + prune (heads per group or
// whole KV groups, embedding channels, neurons, a layer) give a student
// whose `eval nll` equals the independent PyTorch reference's NLL on the
// student's own files within 1e-4; the student keeps its model_type,
// biases and q/k norms.
func TestQwenImportancePruneMatchesReference(t *testing.T) {
	cases := []struct {
		teacher string
		target  prune.Target
		mode    string
		reason  string
	}{
		{"qwen2-gqa", prune.Target{Hidden: 48, FFN: 64, Heads: 2, Layers: 1}, "per-group",
			"q/k/v biases sliced with their rows; one query head kept per KV group; a layer dropped"},
		{"qwen2-tied-bf16-sharded", prune.Target{Hidden: 40, FFN: 72, Heads: 2, Layers: 2}, "per-group",
			"tied embeddings cut by channel, bf16 shards, one KV group"},
		{"qwen3-headdim", prune.Target{Hidden: 48, FFN: 64, KVHeads: 1, Heads: 2}, "groups",
			"a whole KV group dropped (k/v rows and the group's query heads); q_norm/k_norm kept whole"},
		{"qwen3-tied-bf16-sharded", prune.Target{Hidden: 32, FFN: 48, Heads: 2, Layers: 2}, "per-group",
			"head_dim 128 from Qwen3Config's default; tied bf16 shards"},
		{"qwen3-bias-window", prune.Target{Hidden: 48, Heads: 2, Layers: 1}, "per-group",
			"q/k/v/o biases: o_proj's bias sliced with the channels; every layer slides, layer_types rewritten for one layer"},
	}
	ids := []int{3, 17, 99, 5, 64, 1, 127, 42, 8, 15, 77, 31, 2, 90, 11, 60}
	type student struct {
		dir, about string
		mean       float64
		nll        []float64
	}
	var students []student
	for _, c := range cases {
		teacher := filepath.Join(qwenCases, c.teacher)
		tcfg, root, _, scores := scoreTeacher(t, teacher, 8, 16, 4)
		dir := filepath.Join(root, "student")
		po := &PruneOptions{Options: prune.Options{ModelDir: teacher, ScoresPath: scores, OutDir: dir, Target: c.target, EvalData: "none"},
			ShardSize: "0", Weights: "auto", HeadMode: c.mode, Metric: "auto"}
		if err := runPrune(context.Background(), po, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatalf("%s: %v", c.teacher, err)
		}
		scfg, err := model.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if scfg.Family != tcfg.Family || scfg.QKVBias() != tcfg.QKVBias() || scfg.OBias() != tcfg.OBias() || scfg.QKNorm() != tcfg.QKNorm() ||
			scfg.HeadDim != tcfg.HeadDim || scfg.SlidingWindow != tcfg.SlidingWindow || scfg.TieWordEmbeddings != tcfg.TieWordEmbeddings {
			t.Fatalf("%s: student config changed the architecture: %+v (teacher %+v)", c.teacher, scfg, tcfg)
		}
		if scfg.ParamCounts().Total >= tcfg.ParamCounts().Total {
			t.Fatalf("%s: student is not smaller: %+v", c.teacher, scfg)
		}
		var js bytes.Buffer
		if err := runEvalNLL(&EvalNLLOptions{Model: dir, IDs: joinIDs(ids), JSON: true, Weights: "auto"}, &js); err != nil {
			t.Fatal(err)
		}
		var got refResult
		if err := json.Unmarshal(js.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		students = append(students, student{dir, fmt.Sprintf("%s → %d layers, H %d, %d heads / %d KV, FFN %d (%s)",
			c.teacher, scfg.NumLayers, scfg.HiddenSize, scfg.NumHeads, scfg.NumKVHeads, scfg.IntermediateSize, c.reason), got.Mean, got.NLL})
	}
	var dirs []string
	for _, s := range students {
		dirs = append(dirs, s.dir)
	}
	refs, ok := referenceNLL(t, dirs, ids)
	if !ok {
		t.Skip("no /usr/bin/python3 with torch: the students' NLL was not compared with the reference")
	}
	for i, s := range students {
		worst := compareNLL(s.mean, s.nll, refs[i])
		t.Logf("%s: eval nll %.6f, reference %.6f, max |dnll| %.2g", s.about, s.mean, refs[i].Mean, worst)
		if worst > 1e-4 {
			t.Errorf("%s: student nll differs from the reference by %.3g (tolerance 1e-4)", s.about, worst)
		}
	}
}

// A Qwen3-8B config (config.json only) prunes with --params 4e9, and
// --dry-run prints the shape and the student's qwen3 config.
func TestPruneDryRunQwen3Params(t *testing.T) {
	var out bytes.Buffer
	po := &PruneOptions{Options: prune.Options{ModelDir: "../../prune/testdata/qwen3-8b", Params: 4e9, DryRun: true},
		ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "auto"}
	if err := runPrune(context.Background(), po, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"layers 36, hidden 4096, heads 32, kv-heads 8, ffn 12288, head_dim 128 — 8.19B",
		"layers 36, hidden 2560, heads 32, kv-heads 8, ffn 8192, head_dim 128 — 3.99B",
		`"model_type": "qwen3"`, `"architectures": ["Qwen3ForCausalLM"]`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("prune --params 4e9 --dry-run printed:\n%s\nwant %q", out.String(), want)
		}
	}
}

// `init --arch qwen2|qwen3` writes checkpoints the reference reads with the
// same NLL (bf16 shards, tied, head_dim ≠ H/heads, a window), and
// `generate` runs on them.
func TestInitQwenMatchesReference(t *testing.T) {
	cases := []struct {
		args   []string
		reason string
	}{
		{[]string{"--arch", "qwen2", "--tie-embeddings", "--dtype", "bf16", "--shard-size", "40KB"}, "qwen2: random q/k/v biases, tied, bf16 shards"},
		{[]string{"--arch", "qwen3", "--heads", "4", "--kv-heads", "2", "--head-dim", "24", "--sliding-window", "5"}, "qwen3: q/k norms, head_dim 24, every layer sliding over 5"},
	}
	ids := []int{3, 17, 99, 5, 64, 1, 127, 42, 8, 15, 77, 31, 2, 90, 11, 60, 200, 255}
	var dirs []string
	var ours []refResult
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "ck")
		if _, err := runCLI(t, append([]string{"init", "--out", dir, "--std", "0.3", "--seed", "9"}, c.args...)...); err != nil {
			t.Fatalf("%s: %v", c.reason, err)
		}
		got, err := runCLI(t, "eval", "nll", "--model", dir, "--ids", joinIDs(ids), "--json")
		if err != nil {
			t.Fatal(err)
		}
		var res refResult
		if err := json.Unmarshal([]byte(got), &res); err != nil {
			t.Fatal(err)
		}
		if gen, err := runCLI(t, "generate", "--model", dir, "--ids", "5,9,11", "--max-new-tokens", "8"); err != nil || !strings.HasPrefix(gen, "5,9,11,") {
			t.Fatalf("%s: generate: %v %q", c.reason, err, gen)
		}
		dirs, ours = append(dirs, dir), append(ours, res)
	}
	// `export hf` writes a standard checkpoint of the
	// same model_type (here bf16 in shards) that the reference reads.
	exported := filepath.Join(t.TempDir(), "hf")
	if _, err := runCLI(t, "export", "hf", "--model", dirs[1], "--out", exported, "--dtype", "bf16", "--shard-size", "30KB"); err != nil {
		t.Fatal(err)
	}
	if cfg, err := model.LoadConfig(exported); err != nil || cfg.Family != model.Qwen3 || cfg.SlidingWindow != 5 || cfg.HeadDim != 24 {
		t.Fatalf("exported config: %v %+v", err, cfg)
	}
	if idx, err := filepath.Glob(filepath.Join(exported, "model-*-of-*.safetensors")); err != nil || len(idx) < 2 {
		t.Fatalf("export hf --shard-size 30KB wrote %v", idx)
	}
	got, err := runCLI(t, "eval", "nll", "--model", exported, "--ids", joinIDs(ids), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res refResult
	if err := json.Unmarshal([]byte(got), &res); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		args   []string
		reason string
	}{nil, "export hf of the qwen3 checkpoint, bf16 shards"})
	dirs, ours = append(dirs, exported), append(ours, res)
	refs, ok := referenceNLL(t, dirs, ids)
	if !ok {
		t.Skip("no /usr/bin/python3 with torch")
	}
	for i, c := range cases {
		worst := compareNLL(ours[i].Mean, ours[i].NLL, refs[i])
		t.Logf("%s: eval nll %.6f, reference %.6f, max |dnll| %.2g", c.reason, ours[i].Mean, refs[i].Mean, worst)
		if worst > 1e-4 {
			t.Errorf("%s: differs from the reference by %.3g", c.reason, worst)
		}
	}
}

// search on a qwen3 teacher (q/k norms, head_dim ≠ hidden/heads): every
// candidate is pruned, distilled a few steps on the CPU engine (biases and
// q/k norms trained) and ranked; under -short the distillation is faked.
func TestSearchQwen3(t *testing.T) {
	teacher := filepath.Join(qwenCases, "qwen3-headdim")
	tcfg, root, prefix, scores := scoreTeacher(t, teacher, 4, 8, 2)
	if testing.Short() {
		old := searchDistill
		searchDistill = fakeDistill
		defer func() { searchDistill = old }()
	}
	out := filepath.Join(root, "search")
	budget := fmt.Sprint(tcfg.ParamCounts().Total * 7 / 10)
	o := &SearchOptions{SearchOptions: prune.SearchOptions{ModelDir: teacher, ScoresPath: scores, Data: prefix, Tolerance: 0.1, Steps: 3, MaxCandidates: 2, OutDir: out,
		Prune: prune.Options{EvalSamples: 2, EvalSeqLen: 8}}, Params: budget, HeadMode: "per-group", Metric: "auto", Weights: "auto",
		SeqLen: 16, MicroBatch: 2, LR: 1e-3, ValBatches: 2, Device: "cpu"}
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
	if len(res.Candidates) == 0 {
		t.Fatalf("no candidates:\n%s", stdout.String())
	}
	for _, c := range res.Candidates {
		if c.Err != "" || !(c.DistilledLoss > 0) || !(c.PrunedLoss > 0) {
			t.Errorf("%s: pruned loss %v, distilled loss %v, error %q", c.Name, c.PrunedLoss, c.DistilledLoss, c.Err)
		}
	}
	w, err := model.LoadConfig(res.WinnerDir)
	if err != nil || w.Family != model.Qwen3 || !w.QKNorm() || w.HeadDim != tcfg.HeadDim {
		t.Fatalf("winner %s: %v %+v", res.WinnerDir, err, w)
	}
	t.Log(stdout.String())
}
