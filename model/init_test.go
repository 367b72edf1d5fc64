package model

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
)

const initTokDir = "../data/testdata/tok"

func intp(v int) *int { return &v }

func TestInit(t *testing.T) {
	// A tokenizer directory as a checkpoint has it, with a generation
	// config whose eos must not leak into the new checkpoint.
	tokDir := filepath.Join(t.TempDir(), "tokdir")
	if err := os.MkdirAll(tokDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(initTokDir, "llama2-tiny.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"tokenizer.json": b, "generation_config.json": []byte(`{"eos_token_id": 7}`)} {
		if err := os.WriteFile(filepath.Join(tokDir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		o        InitOptions
		want     func(c *Config) string // "" when c is as expected
		tokFiles []string
		reason   string
	}{
		{InitOptions{Family: Nemotron}, func(c *Config) string {
			if c.NumLayers != 2 || c.HiddenSize != 64 || c.NumHeads != 4 || c.NumKVHeads != 2 || c.HeadDim != 16 || c.VocabSize != 256 || c.BOSTokenID != -1 || len(c.EOSTokenIDs) != 0 {
				return "want the tiny shape without special tokens"
			}
			return ""
		}, nil, "the default size is tiny"},
		{InitOptions{Family: Llama, Size: "small", Layers: 3, FFN: 512, TieEmbeddings: true, DType: BF16, ShardBytes: 1 << 20}, func(c *Config) string {
			if c.NumLayers != 3 || c.HiddenSize != 256 || c.IntermediateSize != 512 || !c.TieWordEmbeddings || c.TorchDType != "bfloat16" {
				return "flags override the size"
			}
			return ""
		}, nil, "a size with overrides, tied, bf16, sharded"},
		{InitOptions{Family: Mistral, Hidden: 96, Heads: 6, SlidingWindow: 16, BOS: intp(1), EOS: []int{2, 3}}, func(c *Config) string {
			if c.HeadDim != 16 || c.NumKVHeads != 2 || c.SlidingWindow != 16 || c.BOSTokenID != 1 || !slices.Equal(c.EOSTokenIDs, []int{2, 3}) {
				return "head_dim from hidden/heads, window and explicit specials"
			}
			return ""
		}, nil, "mistral with a window and explicit bos/eos"},
		{InitOptions{Family: Qwen2, TieEmbeddings: true, DType: BF16, ShardBytes: 16 << 10}, func(c *Config) string {
			if !c.QKVBias() || c.OBias() || c.NormEps != 1e-6 || c.Architectures[0] != "Qwen2ForCausalLM" {
				return "qwen2: q/k/v biases, Qwen2Config's eps, its architecture"
			}
			return ""
		}, nil, "qwen2, tied, bf16 in several shards"},
		{InitOptions{Family: Qwen3, Heads: 2, KVHeads: 1, HeadDim: 48, SlidingWindow: 8}, func(c *Config) string {
			if !c.QKNorm() || c.QKVBias() || c.HeadDim != 48 || c.SlidingWindow != 8 || c.Architectures[0] != "Qwen3ForCausalLM" {
				return "qwen3: q/k norms, no biases, head_dim 48 ≠ 64/2, every layer sliding"
			}
			return ""
		}, nil, "qwen3 with an explicit head_dim and a window"},
		{InitOptions{Family: Llama, Tokenizer: filepath.Join(initTokDir, "llama2-tiny.json")}, func(c *Config) string {
			if c.VocabSize != 277 || c.BOSTokenID != 1 || !slices.Equal(c.EOSTokenIDs, []int{2}) {
				return "vocab and specials from the tokenizer"
			}
			return ""
		}, []string{"tokenizer.json"}, "a tokenizer.json file sets vocab, bos and eos"},
		{InitOptions{Family: Llama, Tokenizer: filepath.Join(initTokDir, "spm-bpe.model"), Vocab: 1024, EOS: []int{}}, func(c *Config) string {
			if c.VocabSize != 1024 || c.BOSTokenID != 1 || len(c.EOSTokenIDs) != 0 {
				return "a padded vocab; EOS explicitly none"
			}
			return ""
		}, []string{"tokenizer.model"}, "a SentencePiece file is copied as tokenizer.model"},
		{InitOptions{Family: Nemotron, Tokenizer: tokDir, BOS: intp(-1)}, func(c *Config) string {
			if c.VocabSize != 277 || c.BOSTokenID != -1 || !slices.Equal(c.EOSTokenIDs, []int{2}) {
				return "the directory's tokenizer; BOS explicitly none"
			}
			return ""
		}, []string{"tokenizer.json"}, "a tokenizer directory is copied without its generation_config.json"},
	}
	for i, c := range cases {
		c.o.Out = filepath.Join(t.TempDir(), "ck")
		c.o.Seed = uint64(i)
		res, err := Init(context.Background(), c.o)
		if err != nil {
			t.Errorf("%s: %v", c.reason, err)
			continue
		}
		m, err := Load(c.o.Out, Options{})
		if err != nil {
			t.Errorf("%s: the checkpoint does not load: %v", c.reason, err)
			continue
		}
		if msg := c.want(m.Cfg); msg != "" {
			t.Errorf("%s: %s; got %+v", c.reason, msg, m.Cfg)
		}
		if got := m.Cfg.ParamCounts(); got != res.Params {
			t.Errorf("%s: result says %+v params, checkpoint has %+v", c.reason, res.Params, got)
		}
		if _, err := m.TokenNLL([][]int{{0, 1, 2, 3}}, nil); err != nil {
			t.Errorf("%s: forward pass: %v", c.reason, err)
		}
		m.Close()
		if !slices.Equal(res.TokenizerFiles, c.tokFiles) {
			t.Errorf("%s: copied %v, want %v", c.reason, res.TokenizerFiles, c.tokFiles)
		}
		if len(c.tokFiles) > 0 {
			if _, err := data.LoadTokenizer(c.o.Out); err != nil {
				t.Errorf("%s: tokenizer does not load: %v", c.reason, err)
			}
		}
		if _, err := os.Stat(filepath.Join(c.o.Out, "generation_config.json")); err == nil {
			t.Errorf("%s: a generation_config.json was written", c.reason)
		}
		ents, _ := os.ReadDir(filepath.Dir(c.o.Out))
		if len(ents) != 1 {
			t.Errorf("%s: temporaries left beside Out: %v", c.reason, ents)
		}
	}
}

func TestInitRefuses(t *testing.T) {
	root := t.TempDir()
	ck := filepath.Join(root, "ck")
	if _, err := Init(context.Background(), InitOptions{Family: Nemotron, Out: ck, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(ck, "tokenizer.json")
	if err := os.WriteFile(stale, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	notCk := filepath.Join(root, "notes")
	if err := os.MkdirAll(notCk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(notCk, "a.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(root, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		o      InitOptions
		errHas string
		reason string
	}{
		{InitOptions{Out: filepath.Join(root, "x")}, "Family is required", "no family"},
		{InitOptions{Family: "gpt2", Out: filepath.Join(root, "x")}, "unsupported Family", "unknown family"},
		{InitOptions{Family: Llama, Size: "huge", Out: filepath.Join(root, "x")}, "unknown Size \"huge\"", "unknown size"},
		{InitOptions{Family: Llama, Heads: 4, KVHeads: 3, Out: filepath.Join(root, "x")}, "not a multiple of KVHeads", "GQA groups must divide the heads"},
		{InitOptions{Family: Llama, Hidden: 70, Heads: 4, Out: filepath.Join(root, "x")}, "give HeadDim", "hidden not divisible by heads"},
		{InitOptions{Family: Llama, Layers: -1, Out: filepath.Join(root, "x")}, "Layers must be positive", "negative size"},
		{InitOptions{Family: Llama, BOS: intp(256), Out: filepath.Join(root, "x")}, "BOS 256 is outside the vocabulary", "bos beyond the vocabulary"},
		{InitOptions{Family: Llama, EOS: []int{-2}, Out: filepath.Join(root, "x")}, "EOS -2 is outside", "negative eos"},
		{InitOptions{Family: Llama, Tokenizer: filepath.Join(initTokDir, "llama2-tiny.json"), Vocab: 100, Out: filepath.Join(root, "x")}, "smaller than the 277 ids", "vocab below the tokenizer's"},
		{InitOptions{Family: Llama, Tokenizer: filepath.Join(root, "nope"), Out: filepath.Join(root, "x")}, "Tokenizer:", "missing tokenizer"},
		{InitOptions{Family: Llama, SlidingWindow: 8, Out: filepath.Join(root, "x")}, "mistral, qwen2 or qwen3 setting", "a window on llama"},
		{InitOptions{Family: Llama, DType: "F64", Out: filepath.Join(root, "x")}, "unsupported DType", "bad dtype"},
		{InitOptions{Family: Llama}, "Out is required", "no output"},
		{InitOptions{Family: Llama, Out: ck}, "exists and is not empty (Overwrite replaces", "an existing checkpoint without Overwrite"},
		{InitOptions{Family: Llama, Out: notCk, Overwrite: true}, "not a checkpoint directory", "Overwrite never replaces another kind of directory"},
		{InitOptions{Family: Llama, Out: aFile, Overwrite: true}, "not a directory", "a file at Out"},
	}
	for _, c := range cases {
		_, err := Init(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: got %v, want an error containing %q", c.reason, err, c.errHas)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "x")); err == nil {
		t.Error("a refused Init wrote its output")
	}
	if b, _ := os.ReadFile(filepath.Join(notCk, "a.txt")); string(b) != "keep" {
		t.Error("a refused Overwrite touched the directory")
	}
	// Overwrite replaces the whole checkpoint: the stale tokenizer goes.
	if _, err := Init(context.Background(), InitOptions{Family: Llama, Out: ck, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadConfig(ck); err != nil || cfg.Family != Llama {
		t.Errorf("after Overwrite: %v, %+v", err, cfg)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("Overwrite kept a file of the old checkpoint")
	}
	// An empty directory is not in the way.
	empty := filepath.Join(root, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(context.Background(), InitOptions{Family: Nemotron, Out: empty}); err != nil {
		t.Errorf("into an empty directory: %v", err)
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary left: %s", e.Name())
		}
	}
}

// The same seed gives the same weights; another seed others.
func TestInitDeterministic(t *testing.T) {
	root := t.TempDir()
	read := func(name string, seed uint64) []byte {
		out := filepath.Join(root, name)
		if _, err := Init(context.Background(), InitOptions{Family: Nemotron, Out: out, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read("a", 5), read("b", 5), read("c", 6)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different files")
	}
	if slices.Equal(a, c) {
		t.Error("another seed gave the same file")
	}
}

// A cancelled Init (Ctrl-C) writes nothing and leaves no temporaries, and
// Init removes the temporaries a killed run on the same Out left behind.
func TestInitCancelAndStaleTemporaries(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "ck")
	stale := []string{filepath.Join(root, ".ck.init-tmp-123"), filepath.Join(root, "..ck.init-tmp-123.tmp-456")}
	for _, d := range stale {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(root, ".other.init-tmp-1") // another output's: kept
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Init(ctx, InitOptions{Family: Nemotron, Out: out}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Init: got %v, want context.Canceled", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != ".other.init-tmp-1" {
		t.Errorf("after a cancelled Init the directory holds %v, want only another output's temporary", ents)
	}
	if _, err := Init(context.Background(), InitOptions{Family: Nemotron, Out: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Error("Init removed another output's temporary")
	}
}
