package model

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func loadGoldenMem(t *testing.T, name string) (*Config, *MemSource) {
	t.Helper()
	ck, err := OpenCheckpoint(goldenDir(name))
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	m, err := LoadMem(ck)
	if err != nil {
		t.Fatal(err)
	}
	return ck.Config(), m
}

// roundTo gives what storing v in dt and reading it back should yield.
func roundTo(dt DType, v float32) float32 {
	var b [4]byte
	switch dt {
	case BF16:
		u := BF16FromF32(v)
		b[0], b[1] = byte(u), byte(u>>8)
		var out [1]float32
		BF16ToF32(b[:2], out[:])
		return out[0]
	case F16:
		u := F16FromF32(v)
		b[0], b[1] = byte(u), byte(u>>8)
		var out [1]float32
		F16ToF32(b[:2], out[:])
		return out[0]
	}
	return v
}

func TestSaveCheckpointRoundTrip(t *testing.T) {
	cases := []struct {
		dtype  DType
		shard  int64
		reason string
	}{
		{F32, 0, "f32 must be bit-exact"},
		{BF16, 0, "bf16 round-to-nearest-even, same rounding as BF16FromF32"},
		{F16, 0, "f16 round-to-nearest-even"},
		{BF16, 50_000, "shards + index; 64 KB embeddings exceed the limit and get shards of their own"},
		{"", 0, "empty dtype keeps the source dtype (f32 here)"},
	}
	for _, family := range goldenCases {
		cfg, mem := loadGoldenMem(t, family)
		for _, c := range cases {
			t.Run(family+"/"+string(c.dtype)+"/"+map[bool]string{true: "sharded", false: "single"}[c.shard > 0], func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "out")
				if err := SaveCheckpoint(dir, cfg, mem, SaveOptions{DType: c.dtype, ShardBytes: c.shard, Metadata: map[string]string{"who": "test"}}); err != nil {
					t.Fatal(err)
				}
				ck, err := OpenCheckpoint(dir)
				if err != nil {
					t.Fatalf("%v (%s)", err, c.reason)
				}
				defer ck.Close()
				want := c.dtype
				if want == "" {
					want = F32
				}
				if ck.Config().TorchDType != want.TorchName() {
					t.Errorf("torch_dtype %q, want %q", ck.Config().TorchDType, want.TorchName())
				}
				if md := ck.Metadata(); md["format"] != "pt" || md["who"] != "test" {
					t.Errorf("metadata %v lacks format=pt / who=test", md)
				}
				if ck.Sharded() != (c.shard > 0) {
					t.Errorf("sharded=%v, want %v", ck.Sharded(), c.shard > 0)
				}
				if !slices.Equal(ck.Names(), mem.Names()) {
					t.Fatalf("names differ:\n%v\n%v", ck.Names(), mem.Names())
				}
				for _, n := range mem.Names() {
					orig, _, _ := mem.Get(n)
					info, _ := ck.Info(n)
					if info.DType != want {
						t.Fatalf("%s stored as %s, want %s", n, info.DType, want)
					}
					got := make([]float32, len(orig))
					if err := ck.ReadF32(n, got); err != nil {
						t.Fatal(err)
					}
					for i := range orig {
						if math.Float32bits(got[i]) != math.Float32bits(roundTo(want, orig[i])) {
							t.Fatalf("%s[%d]: got %v, want %v from %v (%s)", n, i, got[i], roundTo(want, orig[i]), orig[i], c.reason)
						}
					}
				}
				for _, f := range ck.Files() {
					fi, _ := os.Stat(f)
					b := make([]byte, 8)
					fh, _ := os.Open(f)
					fh.Read(b)
					fh.Close()
					if n := int64(b[0]) | int64(b[1])<<8 | int64(b[2])<<16; n%8 != 0 {
						t.Errorf("%s: header length %d not 8-aligned", f, n)
					}
					if c.shard > 0 && fi.Size() > c.shard+8+4096 && len(ck.Header(f)) > 1 {
						t.Errorf("%s: %d bytes holds several tensors beyond the shard limit %d", f, fi.Size(), c.shard)
					}
				}
				if c.shard > 0 {
					idx, err := ReadShardIndex(filepath.Join(dir, IndexFile))
					if err != nil {
						t.Fatal(err)
					}
					var total int64
					for _, n := range ck.Names() {
						info, _ := ck.Info(n)
						total += int64(info.NumElements() * info.DType.Size())
					}
					if got, _ := idx.Metadata["total_size"].(float64); int64(got) != total {
						t.Errorf("index total_size %v, want %d", idx.Metadata["total_size"], total)
					}
					files := ck.Files()
					if len(files) < 3 {
						t.Errorf("want several shards, got %v", files)
					}
					for i, f := range files {
						if filepath.Base(f) != ShardFileName(i+1, len(files)) {
							t.Errorf("shard %d named %s", i, filepath.Base(f))
						}
					}
				}
			})
		}
	}
}

// Header lists the tensors of one of the checkpoint's files (test helper).
func (c *Checkpoint) Header(path string) []string {
	for _, f := range c.files {
		if f.path == path {
			return f.Names()
		}
	}
	return nil
}

func TestSaveCheckpointReplacesOldWeightsKeepsOtherFiles(t *testing.T) {
	cfg, mem := loadGoldenMem(t, "llama-tiny")
	dir := filepath.Join(t.TempDir(), "ck")
	if err := SaveCheckpoint(dir, cfg, mem, SaveOptions{ShardBytes: 50_000}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"keep":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckpoint(dir, cfg, mem, SaveOptions{DType: BF16}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"config.json", "model.safetensors", "tokenizer.json"}; !slices.Equal(names, want) {
		t.Errorf("dir holds %v, want %v (old shards and index removed, tokenizer kept)", names, want)
	}
	siblings, _ := os.ReadDir(filepath.Dir(dir))
	if len(siblings) != 1 {
		t.Errorf("temp dirs left beside the checkpoint: %v", siblings)
	}
	if _, err := OpenCheckpoint(dir); err != nil {
		t.Fatal(err)
	}
}

// failingSource fails on one tensor, to check that a failed save leaves
// nothing that looks like a checkpoint.
type failingSource struct {
	TensorSource
	bad string
}

func (f failingSource) ReadF32(name string, dst []float32) error {
	if name == f.bad {
		return errors.New("disk on fire")
	}
	return f.TensorSource.ReadF32(name, dst)
}

func TestSaveCheckpointFailureLeavesNothing(t *testing.T) {
	cfg, mem := loadGoldenMem(t, "mistral-tiny")
	parent := t.TempDir()
	dir := filepath.Join(parent, "ck")
	err := SaveCheckpoint(dir, cfg, failingSource{mem, "model.norm.weight"}, SaveOptions{})
	if err == nil || !strings.Contains(err.Error(), "model.norm.weight") || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("want error naming the tensor and cause, got %v", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("failed save left %v", ents)
	}
	// Into an existing checkpoint: the old one must stay intact.
	if err := SaveCheckpoint(dir, cfg, mem, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckpoint(dir, cfg, failingSource{mem, "lm_head.weight"}, SaveOptions{DType: F16}); err == nil {
		t.Fatal("want error")
	}
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatalf("old checkpoint damaged by a failed save: %v", err)
	}
	ck.Close()
}

func TestSaveCheckpointRejectsMismatchedTensors(t *testing.T) {
	cfg, mem := loadGoldenMem(t, "llama-tiny")
	mem.Delete("model.layers.1.mlp.gate_proj.weight")
	err := SaveCheckpoint(filepath.Join(t.TempDir(), "x"), cfg, mem, SaveOptions{})
	if err == nil || !strings.Contains(err.Error(), `missing tensor "model.layers.1.mlp.gate_proj.weight"`) {
		t.Fatalf("got %v", err)
	}
}

func TestWriteSafetensorsSubsetAndEmpty(t *testing.T) {
	m := NewMemSource()
	m.SetF32("b", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	m.SetF32("a", []int{}, []float32{7})
	m.SetF32("empty", []int{0, 4}, nil)
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if _, err := WriteSafetensors(p, m, nil, SaveOptions{DType: BF16}); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Names(); !slices.Equal(got, []string{"a", "b", "empty"}) {
		t.Fatalf("names %v", got)
	}
	got := make([]float32, 6)
	if err := f.ReadF32("b", got); err != nil || !slices.Equal(got, []float32{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("b = %v, %v", got, err)
	}
	one := make([]float32, 1)
	if err := f.ReadF32("a", one); err != nil || one[0] != 7 {
		t.Fatalf("scalar a = %v, %v", one, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestCopyTokenizerFiles(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "student")
	os.WriteFile(filepath.Join(src, "tokenizer.model"), []byte("spm"), 0o644)
	os.WriteFile(filepath.Join(src, "generation_config.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(src, "model.safetensors"), []byte("not copied"), 0o644)
	got, err := CopyTokenizerFiles(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tokenizer.model", "generation_config.json"}; !slices.Equal(got, want) {
		t.Errorf("copied %v, want %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "tokenizer.model")); string(b) != "spm" {
		t.Errorf("content %q", b)
	}
	if _, err := os.Stat(filepath.Join(dst, "model.safetensors")); err == nil {
		t.Error("weights must not be copied")
	}
}

func TestRandomCheckpoint(t *testing.T) {
	for _, family := range goldenCases {
		cfg, err := LoadConfig(goldenDir(family))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), family)
		if err := RandomCheckpoint(dir, cfg, BF16, 7, 40_000); err != nil {
			t.Fatal(err)
		}
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		rs := NewRandomSource(cfg, BF16, 7)
		if !slices.Equal(ck.Names(), rs.Names()) {
			t.Errorf("%s: names differ", family)
		}
		for _, n := range rs.Names() {
			info, _ := rs.Info(n)
			want := make([]float32, info.NumElements())
			rs.ReadF32(n, want)
			got := make([]float32, len(want))
			if err := ck.ReadF32(n, got); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != roundTo(BF16, want[i]) {
					t.Fatalf("%s %s[%d]: %v vs %v", family, n, i, got[i], want[i])
				}
			}
			// Ranges are the same numbers as whole reads.
			if len(want) > 20 {
				part := make([]float32, 7)
				rs.ReadF32Range(n, 13, part)
				if !slices.Equal(part, want[13:20]) {
					t.Fatalf("%s: range read differs", n)
				}
			}
		}
		var sum, sq float64
		emb := make([]float32, cfg.VocabSize*cfg.HiddenSize)
		rs.ReadF32("model.embed_tokens.weight", emb)
		for _, v := range emb {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		mean := sum / float64(len(emb))
		std := math.Sqrt(sq/float64(len(emb)) - mean*mean)
		if math.Abs(mean) > 0.001 || math.Abs(std-0.02) > 0.001 {
			t.Errorf("%s: embedding mean %.5f std %.5f, want 0 and 0.02", family, mean, std)
		}
		other := make([]float32, len(emb))
		NewRandomSource(cfg, BF16, 8).ReadF32("model.embed_tokens.weight", other)
		if slices.Equal(emb, other) {
			t.Error("seed has no effect")
		}
		ck.Close()
	}
}
