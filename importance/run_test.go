package importance

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// runFixture writes a small random checkpoint and a dataset prefix with
// _train and _val splits of random tokens.
func runFixture(t *testing.T) (dir, prefix string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "teacher")
	cfg, err := model.SyntheticConfig(model.Nemotron, 4, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.RandomCheckpoint(dir, cfg, model.F32, 3, 0); err != nil {
		t.Fatal(err)
	}
	prefix = filepath.Join(root, "data")
	r := rand.New(rand.NewPCG(1, 2))
	for _, split := range []string{"train", "val"} {
		var docs [][]int32
		for d := 0; d < 12; d++ {
			doc := make([]int32, 40)
			for i := range doc {
				doc[i] = int32(r.IntN(97))
			}
			docs = append(docs, doc)
		}
		if err := data.WriteIndexed(prefix+"_"+split, data.DTypeForVocab(97), docs); err != nil {
			t.Fatal(err)
		}
	}
	return dir, prefix
}

// Run is the importance command as a function: the scores it writes are
// Compute's on the same samples, plus the data and model identity, the
// layer-drop losses' split, the default block search and the provenance.
func TestRun(t *testing.T) {
	dir, prefix := runFixture(t)
	out := filepath.Join(t.TempDir(), "scores.json")
	var calls [][2]int64
	res, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: out,
		Samples: 6, SeqLen: 12, Batch: 4, Seed: 5, Aggregation: DefaultAggregation, BI: true, Loss: true, LossSamples: 3,
		Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }, Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sc, res.Scores) {
		t.Errorf("the file differs from the returned scores")
	}
	want := Provenance{ModelDir: dir, Device: "cpu", Batch: 4, Minitron: "v-test"}
	if sc.Provenance == nil || *sc.Provenance != want {
		t.Errorf("provenance %+v, want %+v", sc.Provenance, want)
	}
	if sc.Data.Prefix != prefix || sc.Data.Split != "data_train" || sc.Data.Samples != 6 || sc.Data.SeqLen != 12 || sc.Data.Seed != 5 {
		t.Errorf("data %+v", sc.Data)
	}
	if d := sc.Depth; d == nil || d.LossData != "data_val" || d.LossSamples != 3 || len(d.Blocks) != 2 || d.Blocks[0].K != 2 {
		t.Errorf("depth %+v: want 3 validation samples of data_val and the half-depth block by BI and loss", d)
	}
	if n := len(calls); n == 0 || calls[n-1][0] != calls[n-1][1] {
		t.Errorf("progress reports %v: want the last one complete", calls)
	}

	// The pipeline's settings: losses on the calibration samples, no
	// block search. The widths are Compute's on those samples.
	out2 := filepath.Join(t.TempDir(), "scores.json")
	res2, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: out2,
		Samples: 6, SeqLen: 12, Batch: 4, Seed: 5, Aggregation: DefaultAggregation, BI: true, Loss: true, LossSamples: 3,
		LossOnCalibration: true, BlockK: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	if d := res2.Scores.Depth; d.LossData != "data_train" || len(d.Blocks) != 0 {
		t.Errorf("LossOnCalibration, no blocks: depth %+v", d)
	}
	m, err := model.Load(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ds, _, err := OpenSplit(prefix, "train")
	if err != nil {
		t.Fatal(err)
	}
	samples, err := Samples(ds, 6, 12, 5, m.Cfg.VocabSize)
	ds.Close()
	if err != nil {
		t.Fatal(err)
	}
	direct, err := Compute(context.Background(), m, samples, Options{Aggregation: DefaultAggregation, Batch: 4, BI: true, Loss: true, LossSamples: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(direct.Channels, res2.Scores.Channels) || !reflect.DeepEqual(direct.Layers, res2.Scores.Layers) ||
		!reflect.DeepEqual(direct.Depth.DropLoss, res2.Scores.Depth.DropLoss) || !reflect.DeepEqual(direct.Depth.BI, res2.Scores.Depth.BI) {
		t.Errorf("Run's scores differ from Compute's on the same samples")
	}
	if !reflect.DeepEqual(res.Scores.Layers, res2.Scores.Layers) {
		t.Errorf("the width scores depend on where the layer-drop losses are measured")
	}
}

// A scores file from before Provenance existed still loads.
func TestLoadWithoutProvenance(t *testing.T) {
	dir, prefix := runFixture(t)
	out := filepath.Join(t.TempDir(), "scores.json")
	if _, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: out,
		Samples: 2, SeqLen: 8, Batch: 1, Aggregation: DefaultAggregation}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["provenance"]; !ok {
		t.Fatal("Run wrote no provenance")
	}
	delete(raw, "provenance")
	old, _ := json.Marshal(raw)
	sc, err := Parse(old)
	if err != nil || sc.Provenance != nil {
		t.Errorf("a file without provenance: %v, provenance %+v", err, sc)
	}
}

// Bad settings fail before anything is read or written, naming the
// option, not a CLI flag.
func TestRunErrors(t *testing.T) {
	dir, prefix := runFixture(t)
	base := Config{ModelDir: dir, Data: prefix, Samples: 2, SeqLen: 8, Batch: 1, Aggregation: DefaultAggregation}
	for i, tc := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.Samples = 0 }, "need Samples ≥ 1"},
		{func(c *Config) { c.Batch = 0 }, "Batch ≥ 1"},
		{func(c *Config) { c.MLPPoint = "mid" }, `MLPPoint "mid": want pre or post`},
		{func(c *Config) { c.Device = "tpu" }, `device "tpu": want cpu or cuda`},
		{func(c *Config) { c.BF16 = true }, "BF16 weights need Device cuda"},
		{func(c *Config) { c.Aggregation.Seq = "median" }, "sequence aggregation"},
		{func(c *Config) { c.SeqLen = 100000 }, "SeqLen 100000 exceeds the model's max_position_embeddings"},
		{func(c *Config) { c.Data = filepath.Join(t.TempDir(), "none") }, "no train split"},
	} {
		c := base
		c.Out = filepath.Join(t.TempDir(), "s.json")
		tc.mutate(&c)
		_, err := Run(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "--") {
			t.Errorf("case %d: error %v, want one containing %q and no flag", i, err, tc.want)
		}
		if _, err := os.Stat(c.Out); err == nil {
			t.Errorf("case %d: wrote %s", i, c.Out)
		}
	}
}
