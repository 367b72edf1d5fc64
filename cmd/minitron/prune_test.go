package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/prune"
)

// pruneFixture writes a small random nemotron checkpoint with a tokenizer
// file and a train/val dataset of random tokens.
func pruneFixture(t *testing.T) (dir, prefix string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "teacher")
	cfg, err := model.ParseConfig([]byte(`{"model_type":"nemotron","hidden_size":48,"intermediate_size":96,
		"num_hidden_layers":4,"num_attention_heads":6,"num_key_value_heads":2,"head_dim":8,"vocab_size":64,
		"max_position_embeddings":128,"tie_word_embeddings":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := model.RandomCheckpoint(dir, cfg, model.BF16, 3, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": 3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix = filepath.Join(root, "data")
	r := rand.New(rand.NewPCG(1, 2))
	for _, split := range []string{"train", "val"} {
		var docs [][]int32
		for d := 0; d < 20; d++ {
			doc := make([]int32, 40)
			for i := range doc {
				doc[i] = int32(r.IntN(64))
			}
			docs = append(docs, doc)
		}
		if err := data.WriteIndexed(prefix+"_"+split, data.DTypeForVocab(64), docs); err != nil {
			t.Fatal(err)
		}
	}
	return dir, prefix
}

func TestImportancePruneEvalEndToEnd(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	scores := filepath.Join(root, "scores.json")
	var out bytes.Buffer
	io := &ImportanceOptions{Model: dir, Data: prefix, Samples: 8, SeqLen: 16, Batch: 3, Out: scores,
		AggBatch: "l2", AggSeq: "mean", MLPPoint: "post", LayerMetrics: "bi,loss", LossSamples: 4, Seed: 5, Weights: "auto"}
	if err := runImportance(context.Background(), io, &out); err != nil {
		t.Fatal(err)
	}
	sc, err := importance.Load(scores)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Data.Samples != 8 || sc.Data.SeqLen != 16 || sc.Depth == nil || len(sc.Depth.DropLoss) != 4 || len(sc.Depth.Blocks) != 2 {
		t.Fatalf("scores file incomplete: data %+v depth %+v", sc.Data, sc.Depth)
	}
	if sc.Depth.LossData != "data_val" || sc.Depth.LossSamples != 4 {
		t.Errorf("layer-drop losses measured on %q (%d samples), want 4 samples of data_val", sc.Depth.LossData, sc.Depth.LossSamples)
	}

	student := filepath.Join(root, "student")
	po := &PruneOptions{Options: prune.Options{ModelDir: dir, ScoresPath: scores, OutDir: student,
		Target: prune.Target{Hidden: 32, FFN: 64, Heads: 4, Layers: 3}, EvalSamples: 3, EvalSeqLen: 12, EvalSeed: 7},
		ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "auto"}
	out.Reset()
	if err := runPrune(context.Background(), po, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "generation_config.json", "prune_report.json", "prune_report.txt"} {
		if _, err := os.Stat(filepath.Join(student, f)); err != nil {
			t.Errorf("student lacks %s", f)
		}
	}
	cfg, err := model.LoadConfig(student)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HiddenSize != 32 || cfg.IntermediateSize != 64 || cfg.NumHeads != 4 || cfg.NumKVHeads != 2 || cfg.NumLayers != 3 || cfg.HeadDim != 8 {
		t.Fatalf("student config %+v", cfg)
	}
	ck, err := model.OpenCheckpoint(student)
	if err != nil {
		t.Fatal(err)
	}
	if d := ck.DTypeCounts(); d[model.BF16] == 0 || d[model.F32] != 0 {
		t.Errorf("student dtypes %v, want the teacher's bf16", d)
	}
	ck.Close()
	var rep prune.Report
	b, _ := os.ReadFile(filepath.Join(student, "prune_report.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Eval == nil || rep.Eval.StudentLoss <= 0 || rep.StudentShape.Params.Total >= rep.TeacherShape.Params.Total || len(rep.DroppedLayers) != 1 {
		t.Fatalf("report incomplete: %+v", rep)
	}
	// `minitron eval nll` on the first held-out sample gives the report's number.
	ds, _, err := importance.OpenSplit(prefix, "val")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := importance.Samples(ds, 3, 12, 7, 64)
	ds.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		var js bytes.Buffer
		s := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids[i])), ","), "[]")
		if err := runEvalNLL(&EvalNLLOptions{Model: student, IDs: s, JSON: true, Weights: "auto"}, &js); err != nil {
			t.Fatal(err)
		}
		var got struct {
			MeanNLL float64 `json:"mean_nll"`
		}
		if err := json.Unmarshal(js.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if math.Abs(got.MeanNLL-rep.Eval.StudentPerSample[i]) > 1e-9 {
			t.Errorf("sample %d: eval nll %v, prune report %v", i, got.MeanNLL, rep.Eval.StudentPerSample[i])
		}
	}
}

// scoredPruneFixture is pruneFixture with a scores file (ROOT/scores.json,
// Block Importance) from samples calibration sequences of 8 tokens.
func scoredPruneFixture(t *testing.T, samples, batch int) (dir, prefix, scores string) {
	t.Helper()
	dir, prefix = pruneFixture(t)
	scores = filepath.Join(filepath.Dir(dir), "scores.json")
	if err := runImportance(context.Background(), &ImportanceOptions{Model: dir, Data: prefix, Samples: samples, SeqLen: 8, Batch: batch, Out: scores,
		AggBatch: "l2", AggSeq: "mean", MLPPoint: "post", LayerMetrics: "bi", Seed: 1, Weights: "auto"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	return dir, prefix, scores
}

func TestPruneBadInputWritesNothing(t *testing.T) {
	dir, _, scores := scoredPruneFixture(t, 2, 1)
	root := filepath.Dir(dir)
	other := filepath.Join(root, "other")
	cfg, _ := model.LoadConfig(dir)
	if err := model.RandomCheckpoint(other, cfg, model.BF16, 99, 0); err != nil {
		t.Fatal(err)
	}
	nonEmpty := filepath.Join(root, "full")
	os.MkdirAll(nonEmpty, 0o755)
	os.WriteFile(filepath.Join(nonEmpty, "keep.txt"), []byte("x"), 0o644)
	cases := []struct {
		model, out string
		target     prune.Target
		errHas     string
		reason     string
	}{
		{dir, "o1", prune.Target{Hidden: 64}, "larger than the teacher", "target wider than the teacher"},
		{dir, "o2", prune.Target{Heads: 5}, "not divisible", "5 heads over 2 KV groups"},
		{other, "o3", prune.Target{Hidden: 32}, "another model", "scores file from another checkpoint of the same shape"},
		{dir, "o4", prune.Target{}, "one way", "no shape given"},
		{dir, nonEmpty, prune.Target{Hidden: 32}, "not empty", "--out holds other files"},
	}
	for _, c := range cases {
		out := c.out
		if !filepath.IsAbs(out) {
			out = filepath.Join(root, out)
		}
		po := &PruneOptions{Options: prune.Options{ModelDir: c.model, ScoresPath: scores, OutDir: out, Target: c.target, EvalData: "none"},
			ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "auto"}
		err := runPrune(context.Background(), po, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: got %v, want error containing %q", c.reason, err, c.errHas)
		}
		if out != nonEmpty {
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s: %s was created", c.reason, out)
			}
		}
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func TestPruneDryRunPresets(t *testing.T) {
	cases := []struct {
		preset, want string
	}{
		{"minitron-8b", "layers 32, hidden 4096, heads 48, kv-heads 8, ffn 16384, head_dim 128 — 8.27B"},
		{"minitron-4b", "layers 32, hidden 3072, heads 24, kv-heads 8, ffn 9216, head_dim 128 — 4.19B"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		po := &PruneOptions{Options: prune.Options{ModelDir: "../../prune/testdata/nemotron-4-15b", Preset: c.preset, DryRun: true},
			ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "auto"}
		if err := runPrune(context.Background(), po, &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("--preset %s printed:\n%s\nwant %q", c.preset, out.String(), c.want)
		}
	}
}

// Pruning to the teacher's own shape through the command (written to disk
// in the teacher's bf16) gives bit-identical logits.
func TestPruneSameShapeCheckpointExact(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	scores := filepath.Join(root, "scores.json")
	if err := runImportance(context.Background(), &ImportanceOptions{Model: dir, Data: prefix, Samples: 2, SeqLen: 8, Batch: 1, Out: scores,
		AggBatch: "l2", AggSeq: "mean", MLPPoint: "post", LayerMetrics: "none", Seed: 1, Weights: "auto"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "same")
	po := &PruneOptions{Options: prune.Options{ModelDir: dir, ScoresPath: scores, OutDir: out, Target: prune.Target{Hidden: 48}, EvalData: "none"},
		ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "auto"}
	if err := runPrune(context.Background(), po, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	ids := [][]int{{1, 5, 9, 33, 2, 60, 7, 7, 12}}
	var logits [2][]float32
	for i, d := range []string{dir, out} {
		m, err := model.Load(d, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if logits[i], err = m.Forward(ids, nil); err != nil {
			t.Fatal(err)
		}
		m.Close()
	}
	for i := range logits[0] {
		if logits[0][i] != logits[1][i] {
			t.Fatalf("logit %d: teacher %v, same-shape student %v", i, logits[0][i], logits[1][i])
		}
	}
}

// Bad importance flags and scores lacking an axis fail clearly, writing nothing.
func TestImportanceAndMissingAxisErrors(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	base := ImportanceOptions{Model: dir, Data: prefix, Samples: 2, SeqLen: 8, Batch: 1,
		AggBatch: "l2", AggSeq: "mean", MLPPoint: "post", LayerMetrics: "none", Seed: 1, Weights: "auto"}
	cases := []struct {
		mutate func(*ImportanceOptions)
		errHas string
		reason string
	}{
		{func(o *ImportanceOptions) { o.AggBatch = "max" }, "batch aggregation", "unknown batch reduction"},
		{func(o *ImportanceOptions) { o.AggSeq = "median" }, "sequence aggregation", "unknown sequence reduction"},
		{func(o *ImportanceOptions) { o.MLPPoint = "mid" }, "pre or post", "unknown MLP point"},
		{func(o *ImportanceOptions) { o.LayerMetrics = "bi,acc" }, "layer metric", "unknown layer metric"},
		{func(o *ImportanceOptions) { o.Data = filepath.Join(root, "nodata") }, "no train split", "missing dataset"},
		{func(o *ImportanceOptions) { o.SeqLen = 1000 }, "max_position_embeddings", "samples longer than the model allows"},
	}
	for i, c := range cases {
		o := base
		o.Out = filepath.Join(root, fmt.Sprintf("bad%d.json", i))
		c.mutate(&o)
		err := runImportance(context.Background(), &o, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: got %v, want error containing %q", c.reason, err, c.errHas)
		}
		if _, err := os.Stat(o.Out); err == nil {
			t.Errorf("%s: wrote %s", c.reason, o.Out)
		}
	}
	// Scores without layer metrics cannot choose layers to drop.
	o := base
	o.Out = filepath.Join(root, "widths-only.json")
	if err := runImportance(context.Background(), &o, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "shallow")
	po := &PruneOptions{Options: prune.Options{ModelDir: dir, ScoresPath: o.Out, OutDir: out, Target: prune.Target{Layers: 3}, EvalData: "none"},
		ShardSize: "0", Weights: "auto", HeadMode: "per-group", Metric: "bi"}
	if err := runPrune(context.Background(), po, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "bi layer metric") {
		t.Errorf("dropping layers without BI scores: got %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was created", out)
	}
	// An explicit list needs no layer scores.
	po.DropLayers = "2"
	if err := runPrune(context.Background(), po, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("--drop-layers 2: %v", err)
	}
}
