package prune

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
)

func mustConfig(t *testing.T, js string) *model.Config {
	t.Helper()
	c, err := model.ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomIDs(seed uint64, n, T, V int) [][]int {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]int, n)
	for i := range out {
		out[i] = make([]int, T)
		for j := range out[i] {
			out[i][j] = r.IntN(V)
		}
	}
	return out
}

func logits(t *testing.T, cfg *model.Config, src model.TensorSource, ids [][]int) []float32 {
	t.Helper()
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// zeroRows / zeroCols clear parts of a [rows, cols] tensor in a MemSource.
func zeroRows(t *testing.T, m *model.MemSource, name string, rows ...int) {
	t.Helper()
	d, info, ok := m.Get(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	w := 1
	if len(info.Shape) == 2 {
		w = info.Shape[1]
	}
	for _, r := range rows {
		clear(d[r*w : (r+1)*w])
	}
}

func zeroCols(t *testing.T, m *model.MemSource, name string, cols ...int) {
	t.Helper()
	d, info, _ := m.Get(name)
	for r := 0; r < info.Shape[0]; r++ {
		for _, c := range cols {
			d[r*info.Shape[1]+c] = 0
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestSameShapeReproducesLogitsExactly(t *testing.T) {
	teacher, err := model.OpenCheckpoint("testdata/nemotron-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer teacher.Close()
	cfg := teacher.Config()
	sl, err := Slice(cfg, teacher, IdentityPlan(cfg), SliceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := randomIDs(1, 2, 9, cfg.VocabSize)
	want := logits(t, cfg, teacher, ids)
	got := logits(t, IdentityPlan(cfg).StudentConfig(cfg), sl, ids)
	if !slices.Equal(want, got) {
		t.Fatalf("identity prune changed logits: max |diff| %g", maxAbsDiff(want, got))
	}
}

// deadModel builds a llama model (MHA, so one head is one KV group) in
// which channel 5, layer 1, head (l+1)%4 of every layer and neuron 7+l of
// every layer contribute nothing.
func deadModel(t *testing.T) (*model.Config, *model.MemSource) {
	cfg := mustConfig(t, `{"model_type":"llama","hidden_size":32,"intermediate_size":48,
		"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":4,"vocab_size":50,
		"rms_norm_eps":1e-6,"tie_word_embeddings":false}`)
	rs := model.NewRandomSource(cfg, model.F32, 7)
	rs.Std = 0.3
	m, err := model.LoadMem(rs)
	if err != nil {
		t.Fatal(err)
	}
	const ch = 5
	zeroCols(t, m, "model.embed_tokens.weight", ch)
	for l := 0; l < cfg.NumLayers; l++ {
		p := model.LayerPrefix(l)
		zeroRows(t, m, p+"self_attn.o_proj.weight", ch)
		zeroRows(t, m, p+"mlp.down_proj.weight", ch)
		hd := cfg.HeadDim
		h := (l + 1) % 4
		zeroRows(t, m, p+"self_attn.v_proj.weight", seq(hd * (h + 1))[h*hd:]...)
		zeroRows(t, m, p+"mlp.up_proj.weight", 7+l)
		zeroRows(t, m, p+"mlp.gate_proj.weight", 7+l)
	}
	// layer 1 adds nothing to the residual stream
	zeroRows(t, m, "model.layers.1.self_attn.o_proj.weight", seq(32)...)
	zeroRows(t, m, "model.layers.1.mlp.down_proj.weight", seq(32)...)
	return cfg, m
}

func TestDeadPartsArePrunedFirstAndLogitsStay(t *testing.T) {
	cfg, src := deadModel(t)
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	calib := randomIDs(3, 6, 12, cfg.VocabSize)
	for _, mlp := range []string{importance.MLPPre, importance.MLPPost} {
		sc, err := importance.Compute(context.Background(), m, calib, importance.Options{
			Aggregation: importance.DefaultAggregation, MLPPoint: mlp, Batch: 2, BI: true, Loss: true, BlockK: []int{1}})
		if err != nil {
			t.Fatal(err)
		}
		target, err := Target{Layers: 2, Hidden: 31, Heads: 3, KVHeads: 3, FFN: 47}.Resolve(cfg, PerGroup)
		if err != nil {
			t.Fatal(err)
		}
		for _, metric := range []LayerMetric{LayerBI, LayerLoss, LayerBlock} {
			p, err := SelectPlan(cfg, target, sc, SelectOptions{LayerMetric: metric})
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(p.Hidden, 5) || !slices.Equal(p.Layers, []int{0, 2}) {
				t.Fatalf("%s/%s: kept channels %v layers %v; want channel 5 and layer 1 gone", mlp, metric, p.Hidden, p.Layers)
			}
			for _, l := range p.Layers {
				if slices.Contains(p.Heads[l], (l+1)%4) || slices.Contains(p.FFN[l], 7+l) {
					t.Fatalf("%s: layer %d kept heads %v neurons %v; dead head %d / neuron %d should go", mlp, l, p.Heads[l], p.FFN[l], (l+1)%4, 7+l)
				}
			}
		}
		p, _ := SelectPlan(cfg, target, sc, SelectOptions{})
		sl, err := Slice(cfg, src, p, SliceOptions{RescaleNorms: true})
		if err != nil {
			t.Fatal(err)
		}
		ids := randomIDs(9, 2, 10, cfg.VocabSize)
		want := logits(t, cfg, src, ids)
		got := logits(t, p.StudentConfig(cfg), sl, ids)
		if d := maxAbsDiff(want, got); d > 1e-4 {
			t.Errorf("%s: pruning dead parts changed logits by %g", mlp, d)
		}
	}
}

// Under GQA a dead KV group (zero v_proj rows) silences all its query
// heads; dropping whole groups must remove exactly it.
func TestDeadGroupDroppedInGroupsMode(t *testing.T) {
	teacher, err := model.OpenCheckpoint("testdata/nemotron-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer teacher.Close()
	cfg := teacher.Config()
	src, err := model.LoadMem(teacher)
	if err != nil {
		t.Fatal(err)
	}
	hd := cfg.HeadDim
	var deadNeuron []int
	for l := 0; l < cfg.NumLayers; l++ {
		g := l % cfg.NumKVHeads
		zeroRows(t, src, model.LayerPrefix(l)+"self_attn.v_proj.weight", seq(hd * (g + 1))[g*hd:]...)
		n := (3*l + 1) % cfg.IntermediateSize
		zeroRows(t, src, model.LayerPrefix(l)+"mlp.up_proj.weight", n)
		deadNeuron = append(deadNeuron, n)
	}
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := importance.Compute(context.Background(), m, randomIDs(4, 4, 8, cfg.VocabSize), importance.Options{Aggregation: importance.DefaultAggregation})
	if err != nil {
		t.Fatal(err)
	}
	gsize := cfg.NumHeads / cfg.NumKVHeads
	target, err := Target{Heads: cfg.NumHeads - gsize, FFN: cfg.IntermediateSize - 1}.Resolve(cfg, WholeGroups)
	if err != nil {
		t.Fatal(err)
	}
	p, err := SelectPlan(cfg, target, sc, SelectOptions{HeadMode: WholeGroups})
	if err != nil {
		t.Fatal(err)
	}
	for l := 0; l < cfg.NumLayers; l++ {
		if slices.Contains(p.Groups[l], l%cfg.NumKVHeads) || slices.Contains(p.FFN[l], deadNeuron[l]) {
			t.Fatalf("layer %d kept groups %v (dead %d), neurons include dead %d: %v", l, p.Groups[l], l%cfg.NumKVHeads, deadNeuron[l], slices.Contains(p.FFN[l], deadNeuron[l]))
		}
	}
	sl, err := Slice(cfg, src, p, SliceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := randomIDs(5, 2, 8, cfg.VocabSize)
	if d := maxAbsDiff(logits(t, cfg, src, ids), logits(t, p.StudentConfig(cfg), sl, ids)); d > 1e-5 {
		t.Fatalf("dropping the dead group changed logits by %g", d)
	}
}

// With twin query heads (equal q_proj rows, so equal attention outputs),
// folding the pruned twin's o_proj columns into the kept one preserves the
// logits; plain pruning does not.
func TestResidualHeadsFoldTwins(t *testing.T) {
	teacher, err := model.OpenCheckpoint("testdata/nemotron-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer teacher.Close()
	cfg := teacher.Config()
	src, err := model.LoadMem(teacher)
	if err != nil {
		t.Fatal(err)
	}
	hd, H := cfg.HeadDim, cfg.HiddenSize
	for l := 0; l < cfg.NumLayers; l++ {
		q, _, _ := src.Get(model.LayerPrefix(l) + "self_attn.q_proj.weight")
		for _, pair := range [][2]int{{0, 1}, {2, 3}} { // head 1 = head 0, head 3 = head 2
			copy(q[pair[1]*hd*H:(pair[1]+1)*hd*H], q[pair[0]*hd*H:(pair[0]+1)*hd*H])
		}
	}
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := importance.Compute(context.Background(), m, randomIDs(2, 3, 8, cfg.VocabSize), importance.Options{Aggregation: importance.DefaultAggregation})
	if err != nil {
		t.Fatal(err)
	}
	target, err := Target{Heads: 2}.Resolve(cfg, PerGroup)
	if err != nil {
		t.Fatal(err)
	}
	ids := randomIDs(6, 2, 8, cfg.VocabSize)
	want := logits(t, cfg, src, ids)
	for _, fold := range []bool{false, true} {
		p, err := SelectPlan(cfg, target, sc, SelectOptions{ResidualHeads: fold})
		if err != nil {
			t.Fatal(err)
		}
		sl, err := Slice(cfg, src, p, SliceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d := maxAbsDiff(want, logits(t, p.StudentConfig(cfg), sl, ids))
		if fold && d > 1e-4 {
			t.Errorf("folding twin heads changed logits by %g (folds %v)", d, p.Folds)
		}
		if !fold && d < 1e-3 {
			t.Errorf("dropping a head without folding changed logits by only %g: the test cannot tell folding apart", d)
		}
	}
}

// A killed run's temporary output directory beside --out is removed by the
// next run on the same output.
func TestStagingRemovesStaleTemporaries(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "student")
	stale := filepath.Join(parent, ".student.tmp123456")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "model.safetensors"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, ".other.tmp1")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := newStaging(out)
	if err != nil {
		t.Fatal(err)
	}
	defer s.cleanup()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary %s still there (%v)", stale, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another output's temporary was removed: %v", err)
	}
}

// RescaleNorms scales the hidden-sized RMSNorm weights only: qwen3's
// q_norm/k_norm act over head_dim, which pruning never changes, so they
// are copied whole and unscaled.
func TestRescaleNormsLeavesQKNorms(t *testing.T) {
	ck, err := model.OpenCheckpoint("../model/testdata/cases/qwen3-headdim")
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	cfg := ck.Config()
	p := IdentityPlan(cfg)
	p.Hidden = p.Hidden[:cfg.HiddenSize/4]
	s, err := Slice(cfg, ck, p, SliceOptions{RescaleNorms: true})
	if err != nil {
		t.Fatal(err)
	}
	read := func(src model.TensorSource, name string, n int) []float32 {
		v := make([]float32, n)
		if err := src.ReadF32(name, v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	hd, H := cfg.HeadDim, cfg.HiddenSize
	for _, n := range []string{"model.layers.0.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight"} {
		if got, want := read(s, n, hd), read(ck, n, hd); maxAbsDiff(got, want) != 0 {
			t.Errorf("%s changed: %v, teacher %v", n, got[:3], want[:3])
		}
	}
	got, full := read(s, "model.layers.0.input_layernorm.weight", H/4), read(ck, "model.layers.0.input_layernorm.weight", H)
	if d := math.Abs(float64(got[0] - 2*full[0])); d > 1e-6 {
		t.Errorf("input_layernorm not rescaled by sqrt(4): %v vs teacher %v", got[0], full[0])
	}
}
