package prune

import (
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func TestPresetsOnNemotron15B(t *testing.T) {
	teacher, err := model.LoadConfig("testdata/nemotron-4-15b/config.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		preset string
		want   Target
		params string // billions, 2 decimals
		reason string
	}{
		{"minitron-8b", Target{32, 4096, 48, 8, 16384}, "8.27", "paper's Minitron-8B"},
		{"minitron-4b", Target{32, 3072, 24, 8, 9216}, "4.19", "paper's Minitron-4B (24 heads, not the model card's 32)"},
	}
	for _, c := range cases {
		got, err := PresetTarget(c.preset, teacher)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s = %v, want %v (%s)", c.preset, got, c.want, c.reason)
		}
		if p := model.FormatParams(got.Params(teacher)); p != c.params+"B" {
			t.Errorf("%s has %s params, want %sB (%s)", c.preset, p, c.params, c.reason)
		}
		if _, err := got.Resolve(teacher, PerGroup); err != nil {
			t.Errorf("%s does not resolve: %v", c.preset, err)
		}
	}
	if p := model.FormatParams(Target{32, 6144, 48, 8, 24576}.Params(teacher)); p != "15.63B" {
		t.Errorf("teacher has %s params, want 15.63B", p)
	}
}

func TestPresetRejectsOtherTeacher(t *testing.T) {
	small, _ := model.ParseConfig([]byte(`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`))
	if _, err := PresetTarget("minitron-8b", small); err == nil || !strings.Contains(err.Error(), "Nemotron-4 15B") {
		t.Errorf("want a Nemotron-4 15B shape error, got %v", err)
	}
	if _, err := PresetTarget("minitron-2b", small); err == nil {
		t.Error("unknown preset accepted")
	}
}

func TestForParamsRecipe(t *testing.T) {
	teacher, _ := model.LoadConfig("testdata/nemotron-4-15b/config.json")
	cases := []struct {
		budget int64
		want   Target
		reason string
	}{
		{8.27e9, Target{32, 4096, 48, 8, 16384}, "MLP down to 2/3 (16384), then hidden 6144→4096: exactly Minitron-8B"},
		{13e9, Target{32, 6144, 48, 8, 17920}, "MLP cut alone is enough: 15.63B − 6656·32·2·6144 = 13.01B, the grid point nearest 13B"},
	}
	for _, c := range cases {
		got, err := ForParams(teacher, c.budget, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("--params %d = %v (%s), want %v: %s", c.budget, got, model.FormatParams(got.Params(teacher)), c.want, c.reason)
		}
	}
	for _, bad := range []int64{16e9, 1e6} {
		if _, err := ForParams(teacher, bad, 0); err == nil {
			t.Errorf("--params %d should be rejected", bad)
		}
	}
}

// --params on Qwen teachers (q/k/v biases and q/k norms counted): the
// same recipe, MLP to 2/3 then the embedding, lands within a grid step of
// the budget.
func TestForParamsQwen(t *testing.T) {
	cases := []struct {
		dir    string
		budget int64
		want   Target
		reason string
	}{
		{"testdata/qwen3-8b", 4e9, Target{36, 2560, 32, 8, 8192}, "Qwen3-8B → 4B: FFN 12288 → 8192, hidden 4096 → 2560 (steps 128/256)"},
		{"testdata/qwen2.5-7b", 3e9, Target{28, 1856, 28, 4, 12800}, "Qwen2.5-7B → 3B: FFN 18944 → 12800 (2/3 of it, 12629, rounded up to the 256 grid), hidden 3584 → 1856"},
	}
	for _, c := range cases {
		teacher, err := model.LoadConfig(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ForParams(teacher, c.budget, 0)
		if err != nil {
			t.Fatal(err)
		}
		p := got.Params(teacher)
		if got != c.want || math.Abs(float64(p-c.budget)) > 0.01*float64(c.budget) {
			t.Errorf("%s --params %d = %v (%s), want %v within 1%%: %s", c.dir, c.budget, got, model.FormatParams(p), c.want, c.reason)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	teacher, _ := model.LoadConfig("testdata/nemotron-4-15b/config.json")
	cases := []struct {
		t      Target
		mode   HeadMode
		errHas string
		reason string
	}{
		{Target{Hidden: 8192}, PerGroup, "larger than the teacher", "target wider than teacher"},
		{Target{Heads: 20, KVHeads: 8}, PerGroup, "not divisible", "20 heads over 8 groups"},
		{Target{Heads: 20}, WholeGroups, "multiple of 6", "whole groups of 6"},
		{Target{Heads: 24, KVHeads: 2}, PerGroup, "only 6", "12 per group > 6"},
		{Target{Heads: 24, KVHeads: 8}, WholeGroups, "must be 6", "groups mode keeps whole groups"},
		{Target{Layers: 40}, PerGroup, "larger", "more layers"},
		{Target{FFN: -3}, PerGroup, "positive", "negative ffn"},
	}
	for _, c := range cases {
		_, err := c.t.Resolve(teacher, c.mode)
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%v (%s): got %v, want error containing %q", c.t, c.reason, err, c.errHas)
		}
	}
}

func TestParseLayerList(t *testing.T) {
	got, err := ParseLayerList("16-18, 3")
	if err != nil || len(got) != 4 || got[0] != 16 || got[3] != 3 {
		t.Fatalf("got %v %v", got, err)
	}
	for _, bad := range []string{"3x", "5-2", "-1", "a-b"} {
		if _, err := ParseLayerList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
