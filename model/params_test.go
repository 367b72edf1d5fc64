package model

import (
	"fmt"
	"math"
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
