package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func goldenCk(name string) string {
	return filepath.Join("..", "..", "model", "testdata", "golden", name)
}

func TestInspectGoldenText(t *testing.T) {
	var out bytes.Buffer
	if err := runInspect(&InspectOptions{Dir: goldenCk("nemotron-tiny")}, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	// nemotron-tiny: V=256 H=64 L=2 nH=4 nKV=2 hd=16 F=160, untied, LayerNorm1P with bias.
	// embedding 2·256·64 = 32768; per layer q 4096 + k 2048 + v 2048 + o 4096 + up 10240 +
	// down 10240 + 4 norm vectors 256 = 33024; ×2 + final norm w,b 128 = 66176.
	for _, want := range []string{
		"family        nemotron (NemotronForCausalLM)",
		"heads         4 (kv 2, head_dim 16, q width 64)",
		"rotary dim    8 of 16",
		"params        98.9K (98944)",
		"embedding   32.8K (32768)",
		"non-embed   66.2K (66176)",
		"tensors       24 (F32×24)",
		"in 1 file(s)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func TestInspectJSONShardedBF16(t *testing.T) {
	cfg, err := model.LoadConfig(goldenCk("mistral-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SlidingWindow = 32
	cfg.TieWordEmbeddings = true
	dir := filepath.Join(t.TempDir(), "ck")
	if err := model.RandomCheckpoint(dir, cfg, model.BF16, 1, 40_000); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runInspect(&InspectOptions{Dir: dir, JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var r InspectReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("bad JSON %v:\n%s", err, out.String())
	}
	want := cfg.ParamCounts()
	if r.Params != want.Total || r.EmbeddingParams != 256*64 || r.Params != r.EmbeddingParams+r.NonEmbeddingParams {
		t.Errorf("params %d/%d/%d, want total %d with tied embedding 16384", r.Params, r.EmbeddingParams, r.NonEmbeddingParams, want.Total)
	}
	// embed + 2 layers × (2 norms + q,k,v,o + gate,up,down) + norm; tied: no lm_head.
	if r.DTypes["BF16"] != r.Tensors || r.Tensors != 20 || r.Files < 2 || !r.Tied || r.SlidingWindow != 32 {
		t.Errorf("report %+v", r)
	}
	if r.BytesOnDisk < 2*r.Params {
		t.Errorf("bf16 bytes on disk %d < 2×params", r.BytesOnDisk)
	}
}

func TestInspectErrors(t *testing.T) {
	err := runInspect(&InspectOptions{Dir: t.TempDir()}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("empty dir: %v", err)
	}
	cmd := newRootCmd()
	cmd.SetArgs([]string{"inspect"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil {
		t.Fatal("inspect without DIR must fail")
	}
}

// A qwen3 checkpoint with attention_bias: the biases and q/k norms are
// shown and counted. V=128 H=64 L=2 nH=4 nKV=2 hd=16 F=96, untied: embedding
// 2·128·64 = 16384; per layer q 4096 + k 2048 + v 2048 + o 4096 + biases
// 64+32+32+64 + q_norm/k_norm 16+16 + 2 norms 128 + gate/up/down 18432 =
// 31072; ×2 + final norm 64 = 62208.
func TestInspectQwen(t *testing.T) {
	var out bytes.Buffer
	if err := runInspect(&InspectOptions{Dir: "../../model/testdata/cases/qwen3-bias-window"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"family        qwen3 (Qwen3ForCausalLM)",
		"attention     biases on q,k,v,o; RMSNorm over head_dim on q and k (q_norm, k_norm)",
		"window        6",
		"non-embed   62.2K (62208)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "config formula") {
		t.Errorf("stored and config counts differ:\n%s", out.String())
	}
	out.Reset()
	if err := runInspect(&InspectOptions{Dir: "../../model/testdata/cases/qwen2-gqa", JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var r InspectReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Family != "qwen2" || r.AttnBiases != "q,k,v" || r.QKNorm || r.SlidingWindow != 0 {
		t.Errorf("qwen2 report %+v", r)
	}
}
