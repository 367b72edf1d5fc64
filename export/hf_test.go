package export

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
)

const testTokenizer = "../data/testdata/tok/gpt2-tiny.json"

// distillCheckpoint trains a tiny llama for a few steps and returns the
// checkpoint directory the run wrote (weights f32, optimizer.bin,
// trainer_state.json, tokenizer files).
func distillCheckpoint(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	init := filepath.Join(root, "init")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: init, Family: model.Llama, Layers: 1, Hidden: 32, Heads: 2, KVHeads: 1, FFN: 64, Tokenizer: testTokenizer, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(init, "generation_config.json"), []byte(`{"eos_token_id": 2, "do_sample": false}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	doc := make([]int32, 600)
	for i := range doc {
		doc[i] = int32(i*7%50 + 3)
	}
	train, err := data.NewGPTSampler(data.MemorySource{doc}, data.SamplerOptions{SeqLen: 16, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "run")
	res, err := distill.Run(context.Background(), distill.Config{StudentDir: init, Train: train,
		SeqLen: 16, MicroBatch: 2, Steps: 3, LR: 1e-2, Seed: 1, Out: out, TensorBoard: "none", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"optimizer.bin", "trainer_state.json", "generation_config.json", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(res.Checkpoint, f)); err != nil {
			t.Fatalf("the distill checkpoint lacks %s: %v", f, err)
		}
	}
	return res.Checkpoint
}

func meanNLL(t *testing.T, dir string, ids [][]int) float64 {
	t.Helper()
	m, err := model.Load(dir, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nll, err := m.TokenNLL(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	var n int
	for _, row := range nll {
		for _, v := range row {
			s += v
			n++
		}
	}
	return s / float64(n)
}

// A distill checkpoint exported in each dtype: weights alone in the new
// dtype (bytes scale with its size), the tokenizer and generation config
// kept, the optimizer and trainer state left out, the NLL unchanged within
// the dtype's rounding.
func TestHFFromDistillCheckpoint(t *testing.T) {
	src := distillCheckpoint(t)
	// A chat template beside the tokenizer travels with it.
	if err := os.WriteFile(filepath.Join(src, "chat_template.jinja"), []byte("{{ messages }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ids := [][]int{make([]int, 64)}
	for i := range ids[0] {
		ids[0][i] = (i*13 + 1) % 256
	}
	base := meanNLL(t, src, ids)
	cases := []struct {
		dt     model.DType
		num    int64 // bytes relative to the f32 source: num/2
		tol    float64
		reason string
	}{
		{model.F32, 2, 1e-9, "f32 is a copy: the same weights, the same NLL"},
		{model.BF16, 1, 2e-3, "bf16 halves the bytes; 8 mantissa bits move the mean NLL by well under 1e-3 on this model"},
		{model.F16, 1, 5e-4, "f16 halves the bytes with 11 mantissa bits"},
	}
	for _, c := range cases {
		out := filepath.Join(t.TempDir(), "out")
		res, err := HF(context.Background(), HFOptions{Model: src, Out: out, DType: c.dt})
		if err != nil {
			t.Fatalf("%s: %v", c.reason, err)
		}
		if res.Bytes*2 != res.SourceBytes*c.num {
			t.Errorf("%s: %d bytes from %d", c.reason, res.Bytes, res.SourceBytes)
		}
		ents, _ := os.ReadDir(out)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		got := strings.Join(names, " ")
		if got != "chat_template.jinja config.json generation_config.json model.safetensors tokenizer.json" {
			t.Errorf("%s: output holds %s", c.reason, got)
		}
		ck, err := model.OpenCheckpoint(out)
		if err != nil {
			t.Fatal(err)
		}
		if n := ck.DTypeCounts()[c.dt]; n != len(ck.Names()) {
			t.Errorf("%s: %d of %d tensors in %s", c.reason, n, len(ck.Names()), c.dt)
		}
		if ck.Config().TorchDType != c.dt.TorchName() {
			t.Errorf("%s: torch_dtype %q", c.reason, ck.Config().TorchDType)
		}
		ck.Close()
		nll := meanNLL(t, out, ids)
		t.Logf("%s: %d → %d bytes, mean NLL %.6f → %.6f (|Δ| %.2e)", c.dt, res.SourceBytes, res.Bytes, base, nll, math.Abs(nll-base))
		if math.Abs(nll-base) > c.tol {
			t.Errorf("%s: mean NLL %.6f, source %.6f", c.reason, nll, base)
		}
	}
	// Shards: the same tensors, split.
	out := filepath.Join(t.TempDir(), "sharded")
	if _, err := HF(context.Background(), HFOptions{Model: src, Out: out, DType: model.BF16, ShardBytes: 8 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, model.IndexFile)); err != nil {
		t.Errorf("ShardBytes wrote no index: %v", err)
	}
	if d := math.Abs(meanNLL(t, out, ids) - base); d > 2e-3 {
		t.Errorf("sharded bf16: NLL moved by %g", d)
	}
}

// Bad options are refused before anything is written, and the output path
// stays untouched.
func TestHFRefusesBadInput(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: src, Family: model.Nemotron}); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(root, "existing")
	os.Mkdir(existing, 0o755)
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		o      HFOptions
		want   string
		reason string
	}{
		{HFOptions{Model: src, Out: filepath.Join(root, "a"), DType: "q4"}, `DType "q4"`, "an unknown dtype"},
		{HFOptions{Model: src, Out: filepath.Join(root, "a")}, "DType is required", "no dtype"},
		{HFOptions{Model: src, Out: existing, DType: model.BF16}, "already exists", "an existing (even empty) directory"},
		{HFOptions{Model: src, Out: file, DType: model.BF16}, "already exists", "an existing file"},
		{HFOptions{Model: src, Out: filepath.Join(file, "x"), DType: model.BF16}, "not a directory", "a parent that is a file"},
		{HFOptions{Model: filepath.Join(root, "missing"), Out: filepath.Join(root, "a"), DType: model.BF16}, "Model ", "a missing model"},
		{HFOptions{Out: filepath.Join(root, "a"), DType: model.BF16}, "Model (the checkpoint directory) is required", "no model"},
		{HFOptions{Model: src, DType: model.BF16}, "Out is required", "no output"},
		{HFOptions{Model: src, Out: filepath.Join(root, "a"), DType: model.BF16, ShardBytes: -1}, "ShardBytes", "negative shards"},
	}
	for _, c := range cases {
		_, err := HF(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.reason, err, c.want)
		}
	}
	if _, err := HF(context.Background(), HFOptions{Model: src, Out: existing, DType: model.BF16}); !errors.Is(err, ErrOutExists) {
		t.Errorf("an existing output is not ErrOutExists: %v", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 3 {
		t.Errorf("refused exports left files: %v", ents)
	}
	if e, _ := os.ReadDir(existing); len(e) != 0 {
		t.Errorf("the existing directory was written to: %v", e)
	}
	// A cancelled export leaves nothing at Out or beside it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := HF(ctx, HFOptions{Model: src, Out: filepath.Join(root, "a"), DType: model.BF16}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 3 {
		t.Errorf("a cancelled export left files: %v", ents)
	}
}
