package model

import (
	"math"
	"path/filepath"
	"slices"
	"testing"
)

var goldenCases = []string{"llama-tiny", "mistral-tiny", "nemotron-tiny"}

func goldenDir(name string) string { return filepath.Join("testdata", "golden", name) }

func TestOpenGoldenCheckpoints(t *testing.T) {
	for _, name := range goldenCases {
		t.Run(name, func(t *testing.T) {
			ck, err := OpenCheckpoint(goldenDir(name))
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			cfg := ck.Config()
			if ck.Sharded() {
				t.Error("golden checkpoints are single-file")
			}
			if got := len(ck.Unexpected()); got != 0 {
				t.Errorf("unexpected tensors %v", ck.Unexpected())
			}
			want := len(ExpectedTensors(cfg))
			if cfg.Family == Nemotron {
				if !ck.HasNormBias() {
					t.Error("nemotron golden has LayerNorm1P biases")
				}
				want += len(OptionalTensors(cfg))
			}
			if got := len(ck.Names()); got != want {
				t.Errorf("%d tensors, want %d", got, want)
			}
			info, ok := ck.Info("model.embed_tokens.weight")
			if !ok || info.DType != F32 || !slices.Equal(info.Shape, []int{cfg.VocabSize, cfg.HiddenSize}) {
				t.Fatalf("embed info %+v %v", info, ok)
			}
			emb := make([]float32, info.NumElements())
			if err := ck.ReadF32("model.embed_tokens.weight", emb); err != nil {
				t.Fatal(err)
			}
			raw, _, err := ck.Raw("model.embed_tokens.weight")
			if err != nil {
				t.Fatal(err)
			}
			var nonzero int
			for i, v := range emb {
				bits := uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24
				if math.Float32bits(v) != bits {
					t.Fatalf("element %d: ReadF32 %v != raw bits %#x", i, v, bits)
				}
				if v != 0 {
					nonzero++
				}
			}
			if nonzero < len(emb)/2 {
				t.Errorf("embedding mostly zero (%d/%d nonzero)", nonzero, len(emb))
			}
			part := make([]float32, 10)
			if err := ck.ReadF32Range("model.embed_tokens.weight", 100, part); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(part, emb[100:110]) {
				t.Error("ReadF32Range disagrees with ReadF32")
			}
			if ck.BytesOnDisk() <= int64(4*len(emb)) {
				t.Errorf("BytesOnDisk %d too small", ck.BytesOnDisk())
			}
		})
	}
}

// Release and Prefetch are hints: data read after them is unchanged.
func TestReleasePrefetchKeepData(t *testing.T) {
	ck, err := OpenCheckpoint(goldenDir("llama-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	var r Releaser = ck
	const name = "model.layers.1.mlp.down_proj.weight"
	info, _ := ck.Info(name)
	a, b := make([]float32, info.NumElements()), make([]float32, info.NumElements())
	r.Prefetch(name)
	if err := ck.ReadF32(name, a); err != nil {
		t.Fatal(err)
	}
	r.Release(name)
	r.Release("no.such.tensor")
	if err := ck.ReadF32(name, b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatal("data changed after Release")
	}
}
