package model

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawST builds a safetensors file from a literal JSON header and dataLen
// bytes of data (the length field is computed unless lenOverride >= 0).
func rawST(header string, dataLen int, lenOverride int64) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	n := uint64(len(header))
	if lenOverride >= 0 {
		n = uint64(lenOverride)
	}
	binary.LittleEndian.PutUint64(b, n)
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const twoTensors = `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}}`

func TestSafetensorsCorruption(t *testing.T) {
	valid := rawST(twoTensors, 24, -1)
	cases := []struct {
		name   string
		file   []byte
		want   string
		reason string
	}{
		{"valid", valid, "", "control: the base file opens"},
		{"tiny", []byte{1, 2, 3}, "file too small", "fewer than 8 bytes cannot hold the length"},
		{"truncated", valid[:len(valid)-5], `tensor "b": data_offsets [16, 24] outside the 19-byte data area`, "file cut short"},
		{"header length beyond file", rawST(twoTensors, 24, 1<<20), "beyond the end of the file", "length field larger than the file"},
		{"header length over cap", rawST(twoTensors, 24, 1<<40), "exceeds the 104857600-byte cap", "absurd length must not allocate"},
		{"bad json", rawST(`{"a":{"dtype":"F32",`+strings.Repeat(" ", 4), 0, -1), "header is not valid JSON", "truncated JSON"},
		{"json array", rawST(`[1,2,3]`, 0, -1), "header is not valid JSON", "header must be an object"},
		{"overlap", rawST(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`, 24, -1),
			`tensor "b" (data_offsets [8, 24]) overlaps tensor "a"`, "two tensors share bytes"},
		{"gap", rawST(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[20,24]}}`, 24, -1),
			`gap in data: bytes [16, 20) belong to no tensor (before tensor "b")`, "unused bytes between tensors"},
		{"trailing bytes", rawST(twoTensors, 30, -1), "tensors end at data offset 24 but the data area is 30 bytes", "data past the last tensor"},
		{"unknown dtype", rawST(`{"w":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}`, 4, -1),
			`tensor "w": unsupported dtype "I8" (want F32, BF16 or F16)`, "integer tensors are not weights we can use"},
		{"size mismatch", rawST(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}`, 16, -1),
			`tensor "w": shape [3] of F32 needs 12 bytes but data_offsets [0, 16] span 16`, "shape disagrees with byte range"},
		{"offsets arity", rawST(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4, -1), "data_offsets must be [begin, end]", "one offset"},
		{"offsets reversed", rawST(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, 4, -1), "outside the 4-byte data area", "end before begin"},
		{"missing field", rawST(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, 4, -1), `tensor "w": entry needs dtype, shape and data_offsets`, "no shape"},
		{"entry not object", rawST(`{"w":5}`, 0, -1), `tensor "w": bad entry`, "entry is a number"},
		{"metadata not strings", rawST(`{"__metadata__":{"n":1}}`, 0, -1), "__metadata__ must map strings to strings", "HF metadata is str→str"},
		{"negative dim", rawST(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4, -1), "negative dimension", "shape -1"},
		{"overflowing shape", rawST(`{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, 4, -1),
			"is larger than the file", "product overflows int64"},
		{"shape wraps to zero bytes", rawST(`{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}`, 0, -1),
			"is larger than the file", "2^62 f32 elements wrap to 0 bytes in int64"},
		{"empty tensor", rawST(`{"w":{"dtype":"F32","shape":[5,0],"data_offsets":[0,0]},"v":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}`, 2, -1),
			"", "zero-size and scalar tensors are valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeTemp(t, "x.safetensors", c.file)
			f, err := OpenSafetensors(p)
			if c.want == "" {
				if err != nil {
					t.Fatalf("%v (%s)", err, c.reason)
				}
				f.Close()
				return
			}
			if err == nil {
				f.Close()
				t.Fatalf("opened; want error containing %q (%s)", c.want, c.reason)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q should contain %q and the path (%s)", err, c.want, c.reason)
			}
		})
	}
}

func TestSafetensorsReadAPI(t *testing.T) {
	data := make([]byte, 24)
	for i, v := range []float32{1, 2, 3, 4} {
		binary.LittleEndian.PutUint32(data[4*i:], mathF32bits(v))
	}
	for i, v := range []uint16{0x3f80, 0xc000, 0x4040, 0x0000} { // 1, -2, 3, 0
		binary.LittleEndian.PutUint16(data[16+2*i:], v)
	}
	file := rawST(twoTensors, 0, -1)
	file = append(file, data...)
	p := writeTemp(t, "x.safetensors", file)
	f, err := OpenSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata())
	}
	b := make([]float32, 4)
	if err := f.ReadF32("b", b); err != nil || b[0] != 1 || b[1] != -2 || b[2] != 3 || b[3] != 0 {
		t.Fatalf("bf16 b = %v, %v", b, err)
	}
	a := make([]float32, 4)
	if err := f.ReadF32("a", a); err != nil || a[3] != 4 {
		t.Fatalf("f32 a = %v, %v", a, err)
	}
	if err := f.ReadF32("a", make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "has 4 elements, dst has 3") {
		t.Errorf("short dst: %v", err)
	}
	if err := f.ReadF32Range("a", 3, make([]float32, 2)); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("range past end: %v", err)
	}
	if err := f.ReadF32("nope", a); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
	raw, info, err := f.Raw("b")
	if err != nil || len(raw) != 8 || info.DType != BF16 {
		t.Fatalf("raw %v %+v %v", raw, info, err)
	}
}

func mathF32bits(f float32) uint32 {
	var out [1]float32
	out[0] = f
	b := make([]byte, 4)
	F32ToBytes(out[:], b)
	return binary.LittleEndian.Uint32(b)
}

// ckFixture writes cfg and the given tensors (unvalidated) as a checkpoint.
func ckFixture(t *testing.T, cfg *Config, src TensorSource) string {
	t.Helper()
	dir := t.TempDir()
	cb, _ := cfg.MarshalJSON()
	os.WriteFile(filepath.Join(dir, ConfigFile), cb, 0o644)
	if _, err := WriteSafetensors(filepath.Join(dir, SafetensorsFile1), src, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckpointValidationErrors(t *testing.T) {
	cases := []struct {
		name    string
		family  string
		tensors func(cfg *Config, m *MemSource) // before writing
		files   func(dir string) string         // after writing; returns a path the error must name
		want    string
		reason  string
	}{
		{"wrong shape", "llama-tiny", func(_ *Config, m *MemSource) {
			m.SetF32("model.layers.1.self_attn.q_proj.weight", []int{32, 64}, make([]float32, 32*64))
		}, nil, `tensor "model.layers.1.self_attn.q_proj.weight" has shape [32 64], config wants [64 64]`, "q_proj rows must be nH·hd"},
		{"missing tensor", "mistral-tiny", func(_ *Config, m *MemSource) {
			m.Delete("model.layers.0.mlp.gate_proj.weight")
		}, nil, `missing tensor "model.layers.0.mlp.gate_proj.weight"`, "llama-family MLP needs gate_proj"},
		{"missing lm_head", "llama-tiny", func(_ *Config, m *MemSource) {
			m.Delete("lm_head.weight")
		}, nil, `missing tensor "lm_head.weight"`, "untied config needs lm_head"},
		{"partial norm bias", "nemotron-tiny", func(_ *Config, m *MemSource) {
			m.Delete("model.layers.1.post_attention_layernorm.bias")
		}, nil, `missing tensor "model.layers.1.post_attention_layernorm.bias": norm biases must be present for every norm or for none`, "half-biased LayerNorm1P is corrupt"},
		{"bad norm bias shape", "nemotron-tiny", func(_ *Config, m *MemSource) {
			m.SetF32("model.norm.bias", []int{63}, make([]float32, 63))
		}, nil, `tensor "model.norm.bias" has shape [63], config wants [64]`, "optional tensors are shape-checked when present"},
		{"config mismatch", "llama-tiny", func(c *Config, _ *MemSource) {
			c.IntermediateSize = 128
		}, nil, `tensor "model.layers.0.mlp.gate_proj.weight" has shape [160 64], config wants [128 64]`, "config.json edited after export"},
		{"bad config", "llama-tiny", nil, func(dir string) string {
			os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"model_type":"gpt2"}`), 0o644)
			return filepath.Join(dir, ConfigFile)
		}, `unsupported model_type "gpt2"`, "config errors name the file"},
		{"no weights", "llama-tiny", nil, func(dir string) string {
			os.Remove(filepath.Join(dir, SafetensorsFile1))
			return dir
		}, "no model.safetensors or model.safetensors.index.json", "empty checkpoint dir"},
		{"corrupt weights", "llama-tiny", nil, func(dir string) string {
			p := filepath.Join(dir, SafetensorsFile1)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1], 0o644)
			return p
		}, "outside the", "header validation runs on open"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, m := loadGoldenMem(t, c.family)
			c2 := *cfg
			if c.tensors != nil {
				c.tensors(&c2, m)
			}
			dir := ckFixture(t, &c2, m)
			mustName := dir
			if c.files != nil {
				mustName = c.files(dir)
			}
			ck, err := OpenCheckpoint(dir)
			if err == nil {
				ck.Close()
				t.Fatalf("opened; want error containing %q (%s)", c.want, c.reason)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), mustName) {
				t.Fatalf("error %q should contain %q and name %s (%s)", err, c.want, mustName, c.reason)
			}
		})
	}
}

func TestCheckpointExtrasTolerated(t *testing.T) {
	cfg, m := loadGoldenMem(t, "llama-tiny")
	m.SetF32("model.layers.0.self_attn.rotary_emb.inv_freq", []int{8}, make([]float32, 8))
	m.SetF32("model.custom.thing", []int{2}, []float32{1, 2})
	dir := ckFixture(t, cfg, m)
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if got := ck.Unexpected(); len(got) != 1 || got[0] != "model.custom.thing" {
		t.Errorf("Unexpected() = %v, want only the unknown tensor (inv_freq is harmless)", got)
	}
	if pc := CountParams(ck); pc != cfg.ParamCounts() {
		// inv_freq is skipped, the custom tensor counts.
		if pc.Total != cfg.ParamCounts().Total+2 {
			t.Errorf("CountParams %+v", pc)
		}
	}
}

func TestShardIndexErrors(t *testing.T) {
	cfg, m := loadGoldenMem(t, "nemotron-tiny")
	mk := func(t *testing.T) (string, *ShardIndex) {
		dir := filepath.Join(t.TempDir(), "ck")
		if err := SaveCheckpoint(dir, cfg, m, SaveOptions{ShardBytes: 60_000}); err != nil {
			t.Fatal(err)
		}
		idx, err := ReadShardIndex(filepath.Join(dir, IndexFile))
		if err != nil {
			t.Fatal(err)
		}
		return dir, idx
	}
	writeIdx := func(dir string, idx *ShardIndex) {
		b, _ := json.Marshal(idx)
		os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644)
	}
	// 60 KB shards split the nemotron-tiny weights into 8 files.
	const nShards = 8
	cases := []struct {
		name   string
		mut    func(dir string, idx *ShardIndex)
		want   string
		reason string
	}{
		{"missing shard", func(dir string, _ *ShardIndex) {
			os.Remove(filepath.Join(dir, ShardFileName(2, nShards)))
		}, ShardFileName(2, nShards) + " is missing", "a shard named by the index is gone"},
		{"tensor not in its shard", func(dir string, idx *ShardIndex) {
			idx.WeightMap["model.norm.weight"] = ShardFileName(1, nShards)
			writeIdx(dir, idx)
		}, `tensor "model.norm.weight" is mapped to`, "index points at the wrong shard"},
		{"unlisted tensor", func(dir string, idx *ShardIndex) {
			delete(idx.WeightMap, "model.layers.0.input_layernorm.bias")
			writeIdx(dir, idx)
		}, `holds tensor "model.layers.0.input_layernorm.bias", which the index does not list`, "shard and index disagree"},
		{"path escape", func(dir string, idx *ShardIndex) {
			idx.WeightMap["model.norm.weight"] = "../evil.safetensors"
			writeIdx(dir, idx)
		}, `maps to "../evil.safetensors", which is not a file name`, "index must not reach outside the dir"},
		{"empty map", func(dir string, idx *ShardIndex) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"metadata":{}}`), 0o644)
		}, "weight_map is missing or empty", "index without weight_map"},
		{"bad json", func(dir string, idx *ShardIndex) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"weight_map":`), 0o644)
		}, "not a valid shard index", "truncated index"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, idx := mk(t)
			if len(filesWithPrefix(dir, "model-")) != nShards {
				t.Fatalf("fixture should have 8 shards, has %v", filesWithPrefix(dir, "model-"))
			}
			c.mut(dir, idx)
			ck, err := OpenCheckpoint(dir)
			if err == nil {
				ck.Close()
				t.Fatalf("opened; want %q (%s)", c.want, c.reason)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %q should contain %q and the dir (%s)", err, c.want, c.reason)
			}
		})
	}
}

func filesWithPrefix(dir, prefix string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func FuzzSafetensorsHeader(f *testing.F) {
	f.Add(rawST(twoTensors, 24, -1))
	f.Add(rawST(`{"a":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}`, 2, -1))
	f.Add(rawST(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}`, 24, -1))
	f.Add(rawST(`{"__metadata__":{"k":"v"}}`, 0, -1))
	f.Add(rawST(`{}`, 0, 1<<62))
	f.Add([]byte{})
	if b, err := os.ReadFile(filepath.Join(goldenDir("nemotron-tiny"), SafetensorsFile1)); err == nil {
		n := binary.LittleEndian.Uint64(b)
		f.Add(b[:8+n]) // header only: data area missing
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseSafetensorsHeader(b, int64(len(b)))
		if err != nil {
			return
		}
		// Accepted headers must describe a file that tiles exactly.
		pos := 8 + h.HeaderLen
		for _, e := range h.Tensors {
			if e.Begin != pos || e.End-e.Begin != int64(e.NumElements()*e.DType.Size()) {
				t.Fatalf("accepted a bad layout: %+v", e)
			}
			pos = e.End
		}
		if pos != int64(len(b)) {
			t.Fatalf("accepted header whose tensors end at %d of %d", pos, len(b))
		}
	})
}
