package model

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func shapeConfig(L, H, nH, nKV, hd, F, V int, tied bool) *Config {
	return &Config{Family: Nemotron, NumLayers: L, HiddenSize: H, NumHeads: nH, NumKVHeads: nKV,
		HeadDim: hd, IntermediateSize: F, VocabSize: V, TieWordEmbeddings: tied}
}

func TestParamCountsPublishedSizes(t *testing.T) {
	cases := []struct {
		name   string
		cfg    *Config
		totalB float64 // published, in billions
		reason string
	}{
		{"Minitron-4B", shapeConfig(32, 3072, 24, 8, 128, 9216, 256000, false), 4.19, "DESIGN.md: 4.19B params with untied lm_head counted"},
		{"Minitron-8B", shapeConfig(32, 4096, 48, 8, 128, 16384, 256000, false), 8.27, "nH·hd=6144 ≠ H; q/o must use QDim, not H"},
		{"Nemotron-4-15B", shapeConfig(32, 6144, 48, 8, 128, 24576, 256000, false), 15.63, "Nemotron-4 report: 3.2B embedding + 12.5B non-embedding"},
	}
	for _, c := range cases {
		pc := c.cfg.ParamCounts()
		got := float64(pc.Total) / 1e9
		if math.Abs(got-c.totalB) > 0.005 {
			t.Errorf("%s: total %.4fB, want %.2fB (%s)", c.name, got, c.totalB, c.reason)
		}
		if want := 2 * int64(c.cfg.VocabSize) * int64(c.cfg.HiddenSize); pc.Embedding != want {
			t.Errorf("%s: embedding %d, want %d (untied: embed + lm_head)", c.name, pc.Embedding, want)
		}
		if pc.NonEmbedding+pc.Embedding != pc.Total {
			t.Errorf("%s: parts do not add up: %+v", c.name, pc)
		}
	}
}

// Qwen's published sizes count q/k/v biases (qwen2) and q/k norms (qwen3).
func TestParamCountsQwen(t *testing.T) {
	qwen05 := strings.NewReplacer(`"hidden_size": 3584`, `"hidden_size": 896`, `"intermediate_size": 18944`, `"intermediate_size": 4864`,
		`"num_attention_heads": 28`, `"num_attention_heads": 14`, `"num_hidden_layers": 28`, `"num_hidden_layers": 24`,
		`"num_key_value_heads": 4`, `"num_key_value_heads": 2`, `"vocab_size": 152064`, `"vocab_size": 151936`,
		`"tie_word_embeddings": false`, `"tie_word_embeddings": true`).Replace(qwen25_7BConfig)
	cases := []struct {
		name        string
		config      string
		total, nonE float64 // billions, as the model cards round them
		reason      string
	}{
		{"Qwen2.5-7B", qwen25_7BConfig, 7.61, 6.53, "model card: 7.61B, 6.53B non-embedding"},
		{"Qwen2.5-0.5B", qwen05, 0.49, 0.36, "model card: 0.49B, 0.36B non-embedding; tied embeddings count once"},
		{"Qwen3-8B", qwen3_8BConfig, 8.2, 6.95, "model card: 8.2B, 6.95B non-embedding; head_dim 128 with 32 heads = H"},
	}
	for _, c := range cases {
		cfg, err := ParseConfig([]byte(c.config))
		if err != nil {
			t.Fatal(err)
		}
		pc := cfg.ParamCounts()
		// The cards round (or truncate) to the digits shown.
		tol := 0.01
		if c.total == 8.2 {
			tol = 0.05
		}
		if got := float64(pc.Total) / 1e9; math.Abs(got-c.total) > tol {
			t.Errorf("%s: total %.4fB, want %.2fB (%s)", c.name, got, c.total, c.reason)
		}
		if got := float64(pc.NonEmbedding) / 1e9; math.Abs(got-c.nonE) > 0.005 {
			t.Errorf("%s: non-embedding %.4fB, want %.2fB (%s)", c.name, got, c.nonE, c.reason)
		}
	}
}

func TestCountParamsMatchesConfigOnQwenCases(t *testing.T) {
	for _, name := range caseDirs {
		if !strings.HasPrefix(name, "qwen") {
			continue // nemotron-headdim-sharded stores no norm biases, which the config count includes
		}
		ck, err := OpenCheckpoint(caseDir(name))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := CountParams(ck), ck.Config().ParamCounts(); got != want {
			t.Errorf("%s: stored %+v, config says %+v", name, got, want)
		}
		ck.Close()
	}
}

func TestParamCountsTiedAndBiases(t *testing.T) {
	base := shapeConfig(2, 64, 4, 2, 16, 160, 256, false)
	base.Family = Llama
	untied := base.ParamCounts()
	tied := *base
	tied.TieWordEmbeddings = true
	if d := untied.Total - tied.ParamCounts().Total; d != 256*64 {
		t.Errorf("tying should drop exactly lm_head (16384), dropped %d", d)
	}
	biased := *base
	biased.AttentionBias, biased.MLPBias = true, true
	// q 64 + k 32 + v 32 + o 64 + gate 160 + up 160 + down 64 = 576 per layer.
	if d := biased.ParamCounts().Total - untied.Total; d != 2*576 {
		t.Errorf("biases add %d, want %d", d, 2*576)
	}
}

func TestCountParamsMatchesConfigOnGolden(t *testing.T) {
	for _, name := range goldenCases {
		ck, err := OpenCheckpoint(goldenDir(name))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := CountParams(ck), ck.Config().ParamCounts(); got != want {
			t.Errorf("%s: stored %+v, config says %+v", name, got, want)
		}
		ck.Close()
	}
}

func ExampleConfig_ParamCounts() {
	cfg := &Config{Family: Nemotron, NumLayers: 32, HiddenSize: 3072, NumHeads: 24, NumKVHeads: 8,
		HeadDim: 128, IntermediateSize: 9216, VocabSize: 256000}
	pc := cfg.ParamCounts()
	fmt.Printf("total %.2fB, embedding %.2fB, non-embedding %.2fB\n",
		float64(pc.Total)/1e9, float64(pc.Embedding)/1e9, float64(pc.NonEmbedding)/1e9)
	// Output: total 4.19B, embedding 1.57B, non-embedding 2.62B
}
