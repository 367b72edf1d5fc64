package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

const spmTokenizer = "../data/testdata/tok/spm-bpe.model"

// readGGUFFile parses and checks a written file.
func readGGUFFile(t *testing.T, path string) *ggufFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseGGUF(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// ggufNames maps an HF tensor name to the GGUF one, as llama.cpp names them.
func ggufName(hf string) string {
	r := strings.NewReplacer("model.layers.", "blk.", ".self_attn.q_proj", ".attn_q", ".self_attn.k_proj", ".attn_k",
		".self_attn.v_proj", ".attn_v", ".self_attn.o_proj", ".attn_output", ".mlp.gate_proj", ".ffn_gate",
		".mlp.up_proj", ".ffn_up", ".mlp.down_proj", ".ffn_down", ".input_layernorm", ".attn_norm",
		".post_attention_layernorm", ".ffn_norm", ".self_attn.q_norm", ".attn_q_norm", ".self_attn.k_norm", ".attn_k_norm")
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight"
	case "lm_head.weight":
		return "output.weight"
	case "model.norm.weight":
		return "output_norm.weight"
	case "model.norm.bias":
		return "output_norm.bias"
	}
	return r.Replace(hf)
}

// backToHF undoes the export's layout changes (q/k permutation for the
// llama family, nemotron's +1 norms), giving HF tensors to run minitron's
// forward pass on: the GGUF holds the same model if the NLL matches.
func backToHF(t *testing.T, f *ggufFile, ck *model.Checkpoint) *model.MemSource {
	t.Helper()
	cfg := ck.Config()
	mem := model.NewMemSource()
	for _, hf := range ck.Names() {
		info, _ := ck.Info(hf)
		g := ggufName(hf)
		i, ok := f.byName[g]
		if !ok {
			t.Fatalf("%s (%s) not in the GGUF", g, hf)
		}
		if got := f.tensors[i].shape(); fmt.Sprint(got) != fmt.Sprint(info.Shape) {
			t.Fatalf("%s: shape %v, HF %v", g, got, info.Shape)
		}
		x, err := f.f32(g)
		if err != nil {
			t.Fatal(err)
		}
		if arch, _ := ggufArch(cfg.Family); arch == "llama" {
			switch {
			case strings.Contains(hf, "q_proj"):
				unpermuteRows(x, cfg.NumHeads, cfg.HeadDim)
			case strings.Contains(hf, "k_proj"):
				unpermuteRows(x, cfg.NumKVHeads, cfg.HeadDim)
			}
		} else if cfg.Family == model.Nemotron && strings.HasSuffix(hf, "norm.weight") {
			for i := range x {
				x[i]--
			}
		}
		if err := mem.SetF32(hf, info.Shape, x); err != nil {
			t.Fatal(err)
		}
	}
	return mem
}

// unpermuteRows inverts permuteRows: old row j·hd/2+i is new row 2i+j.
func unpermuteRows(x []float32, heads, hd int) {
	cols := len(x) / (heads * hd)
	tmp := make([]float32, hd*cols)
	for h := range heads {
		blk := x[h*hd*cols : (h+1)*hd*cols]
		copy(tmp, blk)
		for i := range hd / 2 {
			for j := range 2 {
				copy(blk[(j*hd/2+i)*cols:(j*hd/2+i+1)*cols], tmp[(2*i+j)*cols:(2*i+j+1)*cols])
			}
		}
	}
}

func nllOf(t *testing.T, cfg *model.Config, src model.TensorSource, ids [][]int) float64 {
	t.Helper()
	m, err := model.New(cfg, src, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nll, err := m.TokenNLL(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for _, v := range nll[0] {
		s += v
	}
	return s / float64(len(nll[0]))
}

// Every family, and a pruned-shape student whose head_dim ≠ hidden/heads,
// exported in every dtype: the file parses and checks, the metadata is
// llama.cpp's, the tensors map back to the checkpoint (exactly at f32),
// and the model they hold scores a 64-token sequence like the original
// within the dtype's tolerance.
func TestGGUFExportFamilies(t *testing.T) {
	root := t.TempDir()
	models := []struct {
		name   string
		o      model.InitOptions
		tok    string // tokenizer.ggml.model
		pre    string
		reason string
	}{
		{"llama", model.InitOptions{Family: model.Llama, Tokenizer: testTokenizer}, "gpt2", "gpt-2", "llama with a byte-level BPE tokenizer"},
		{"mistral", model.InitOptions{Family: model.Mistral, Tokenizer: spmTokenizer, Vocab: 832}, "llama", "default", "mistral (llama.cpp's llama) with a SentencePiece model, padded vocab"},
		{"nemotron", model.InitOptions{Family: model.Nemotron, Tokenizer: spmTokenizer}, "llama", "default", "nemotron: +1 norms, zero biases, partial RoPE"},
		{"nemotron-pruned", model.InitOptions{Family: model.Nemotron, Hidden: 48, Heads: 3, KVHeads: 1, HeadDim: 16, FFN: 96}, "none", "", "a pruned nemotron (hidden and heads cut together), no tokenizer"},
		{"llama-pruned", model.InitOptions{Family: model.Llama, Hidden: 48, Heads: 3, KVHeads: 1, HeadDim: 32, FFN: 64, TieEmbeddings: true}, "none", "", "llama with head_dim 32 ≠ 48/3, tied embeddings"},
		{"qwen2", model.InitOptions{Family: model.Qwen2, Tokenizer: qwenTokenizer(t, root)}, "gpt2", "qwen2", "qwen2: q/k/v biases, NEOX RoPE (no permutation), a Qwen2-style tokenizer with NFC"},
		{"qwen3-pruned", model.InitOptions{Family: model.Qwen3, Hidden: 48, Heads: 3, KVHeads: 1, HeadDim: 32, FFN: 64, TieEmbeddings: true}, "none", "", "qwen3: attn_q_norm/attn_k_norm, head_dim 32 ≠ 48/3, tied"},
	}
	dtypes := []struct {
		dt     GGUFDType
		tol    float64
		reason string
	}{
		{GGUFF32, 1e-6, "f32 holds the same weights"},
		{GGUFF16, 1e-3, "f16 rounds the matrices to 11 bits"},
		{GGUFBF16, 5e-3, "bf16 rounds to 8 bits"},
		{GGUFQ8_0, 5e-3, "q8_0: 8-bit blocks of 32 with an f16 scale"},
	}
	ids := [][]int{make([]int, 64)}
	for _, m := range models {
		dir := filepath.Join(root, m.name)
		m.o.Out, m.o.Seed = dir, 7
		m.o.Std = 0.1 // large enough weights that a layout error shows in the NLL
		if _, err := model.Init(context.Background(), m.o); err != nil {
			t.Fatalf("%s: %v", m.reason, err)
		}
		ck, err := model.OpenCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := ck.Config()
		for i := range ids[0] {
			ids[0][i] = (i*37 + 5) % cfg.VocabSize
		}
		base := nllOf(t, cfg, ck, ids)
		for _, d := range dtypes {
			out := filepath.Join(root, m.name+"-"+string(d.dt)+".gguf")
			res, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: out, DType: d.dt})
			if err != nil {
				t.Fatalf("%s, %s: %v", m.reason, d.dt, err)
			}
			f := readGGUFFile(t, out)
			checkMetadata(t, f, cfg, m.tok, m.pre)
			if res.Tokenizer != m.tok || res.Bytes != f.fileSize {
				t.Errorf("%s: result %+v, file %d bytes", m.reason, res, f.fileSize)
			}
			nll := nllOf(t, cfg, backToHF(t, f, ck), ids)
			t.Logf("%-16s %-5s %7d bytes, mean NLL %.6f vs %.6f (|Δ| %.2e)", m.name, d.dt, f.fileSize, nll, base, math.Abs(nll-base))
			if math.Abs(nll-base) > d.tol {
				t.Errorf("%s, %s (%s): mean NLL %.6f, checkpoint %.6f", m.reason, d.dt, d.reason, nll, base)
			}
			if d.dt == GGUFF32 {
				back := backToHF(t, f, ck)
				for _, hf := range ck.Names() {
					info, _ := ck.Info(hf)
					want := make([]float32, info.NumElements())
					ck.ReadF32(hf, want)
					got, _, _ := back.Get(hf)
					if cfg.Family == model.Nemotron && strings.HasSuffix(hf, "norm.weight") {
						// (w+1)−1 need not give w back in f32: compare the stored w+1.
						got, _ = f.f32(ggufName(hf))
						for i := range want {
							want[i]++
						}
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s: %s[%d] = %v after the round trip, want %v", m.reason, hf, i, got[i], want[i])
						}
					}
				}
			}
		}
		ck.Close()
	}
}

// qwenTokenizer writes a Qwen2-style tokenizer.json (llama3-tiny's with
// Qwen2's single-digit split and the NFC normalizer Qwen's files declare)
// into a directory of its own under root.
func qwenTokenizer(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile("../data/testdata/tok/llama3-tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`\\p{N}{1,3}`), []byte(`\\p{N}`), 1)
	b = bytes.Replace(b, []byte(`"normalizer": null`), []byte(`"normalizer": {"type": "NFC"}`), 1)
	if !bytes.Contains(b, []byte(`"NFC"`)) || bytes.Contains(b, []byte(`{1,3}`)) {
		t.Fatal("llama3-tiny.json changed: the Qwen2-style copy was not made")
	}
	dir := filepath.Join(root, "qwen-tok")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "tokenizer.json")
}

// checkMetadata compares the llama.cpp keys with the config.
func checkMetadata(t *testing.T, f *ggufFile, cfg *model.Config, tok, pre string) {
	t.Helper()
	arch := f.str("general.architecture")
	want := map[string]int{
		arch + ".context_length":          cfg.MaxPositionEmbeddings,
		arch + ".embedding_length":        cfg.HiddenSize,
		arch + ".block_count":             cfg.NumLayers,
		arch + ".feed_forward_length":     cfg.IntermediateSize,
		arch + ".attention.head_count":    cfg.NumHeads,
		arch + ".attention.head_count_kv": cfg.NumKVHeads,
		arch + ".attention.key_length":    cfg.HeadDim,
		arch + ".attention.value_length":  cfg.HeadDim,
		arch + ".rope.dimension_count":    cfg.RotaryDim(),
		arch + ".vocab_size":              cfg.VocabSize,
		"general.alignment":               32,
	}
	for k, v := range want {
		got, err := f.u32(k)
		if err != nil || int(got) != v {
			t.Errorf("%s = %d (%v), want %d", k, got, err, v)
		}
	}
	eps := arch + ".attention.layer_norm_rms_epsilon"
	if cfg.Family == model.Nemotron {
		eps = arch + ".attention.layer_norm_epsilon"
	}
	if e := f.kv[eps]; e.typ != gtFloat32 || math.Abs(float64(e.val.(float32))-cfg.NormEps) > 1e-12 {
		t.Errorf("%s = %v", eps, e.val)
	}
	if e := f.kv[arch+".rope.freq_base"]; e.typ != gtFloat32 || float64(e.val.(float32)) != cfg.RopeTheta {
		t.Errorf("rope.freq_base = %v", e.val)
	}
	if got := f.str("tokenizer.ggml.model"); got != tok {
		t.Errorf("tokenizer.ggml.model %q, want %q", got, tok)
	}
	if tok == "none" {
		return
	}
	if got := f.str("tokenizer.ggml.pre"); got != pre {
		t.Errorf("tokenizer.ggml.pre %q, want %q", got, pre)
	}
	if n := len(f.strs("tokenizer.ggml.tokens")); n != cfg.VocabSize {
		t.Errorf("%d tokens, vocab_size %d", n, cfg.VocabSize)
	}
	if tt := f.kv["tokenizer.ggml.token_type"]; tt.elem != gtInt32 || len(tt.val.([]any)) != cfg.VocabSize {
		t.Errorf("token_type: %d entries of type %d", len(tt.val.([]any)), tt.elem)
	}
}

// The vocabularies hold the tokenizer's tokens at their ids: the byte-level
// BPE's vocab, added tokens (special ones as CONTROL) and merges in order;
// SentencePiece's pieces with their scores and types.
func TestGGUFTokenizers(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "bpe")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: dir, Family: model.Llama, Tokenizer: testTokenizer}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "bpe.gguf")
	if _, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: out}); err != nil {
		t.Fatal(err)
	}
	f := readGGUFFile(t, out)
	tk, err := data.LoadHFTokenizer(testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	toks := f.strs("tokenizer.ggml.tokens")
	types := f.kv["tokenizer.ggml.token_type"].val.([]any)
	for id := range tk.VocabSize() {
		if toks[id] != tk.Token(id) {
			t.Errorf("token %d = %q, tokenizer %q", id, toks[id], tk.Token(id))
		}
		want := int32(ttNormal)
		if tk.IsSpecial(id) {
			want = ttControl
		} else if id >= 264 {
			want = ttUserDefined // <tool>: added, not special
		}
		if types[id].(int32) != want {
			t.Errorf("token %d %q: type %d, want %d", id, toks[id], types[id], want)
		}
	}
	if m := f.strs("tokenizer.ggml.merges"); len(m) == 0 || m[0] != "h e" {
		t.Errorf("merges %q", m)
	}
	if _, err := f.u32("tokenizer.ggml.eos_token_id"); err != nil {
		t.Error(err)
	}
	if e := f.kv["tokenizer.ggml.add_bos_token"]; e.typ != gtBool || e.val != false {
		t.Errorf("byte-level BPE without a BOS template: add_bos_token %v", e.val)
	}

	dir = filepath.Join(root, "spm")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: dir, Family: model.Nemotron, Tokenizer: spmTokenizer}); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(root, "spm.gguf")
	if _, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: out, DType: GGUFQ8_0}); err != nil {
		t.Fatal(err)
	}
	f = readGGUFFile(t, out)
	sp, err := data.LoadSentencePiece(spmTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	toks = f.strs("tokenizer.ggml.tokens")
	scores := f.kv["tokenizer.ggml.scores"].val.([]any)
	types = f.kv["tokenizer.ggml.token_type"].val.([]any)
	for i, p := range sp.Pieces {
		if toks[i] != p.Piece || scores[i].(float32) != p.Score || types[i].(int32) != int32(p.Type) {
			t.Errorf("piece %d: %q %v %v, model %q %v %v", i, toks[i], scores[i], types[i], p.Piece, p.Score, p.Type)
		}
	}
	if got, err := f.u32("tokenizer.ggml.unknown_token_id"); err != nil || int(got) != sp.UNK() {
		t.Errorf("unknown_token_id %d (%v), want %d", got, err, sp.UNK())
	}
	if e := f.kv["tokenizer.ggml.add_bos_token"]; e.val != (sp.BOS() >= 0) {
		t.Errorf("SentencePiece with BOS %d: add_bos_token %v (llama's convention)", sp.BOS(), e.val)
	}
	if e := f.kv["tokenizer.ggml.add_space_prefix"]; e.typ != gtBool || e.val.(bool) != sp.Normalizer.AddDummyPrefix {
		t.Errorf("add_space_prefix %v", e.val)
	}
}

// Bad input is refused before anything is written.
func TestGGUFRefusesBadInput(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: src, Family: model.Llama}); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(root, "meta")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: meta, Family: model.Llama}); err != nil {
		t.Fatal(err)
	}
	// A byte-level BPE whose split pattern llama.cpp has no name for.
	b, _ := os.ReadFile("../data/testdata/tok/llama3-tiny.json")
	b = bytes.Replace(b, []byte(`\\p{N}{1,3}`), []byte(`\\p{N}{1,4}`), 1)
	os.WriteFile(filepath.Join(meta, "tokenizer.json"), b, 0o644)
	existing := filepath.Join(root, "existing.gguf")
	os.WriteFile(existing, []byte("keep"), 0o644)
	nemo := filepath.Join(root, "nemo")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: nemo, Family: model.Nemotron, Hidden: 48, Heads: 4, KVHeads: 2, HeadDim: 16}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		o      GGUFOptions
		want   string
		reason string
	}{
		{GGUFOptions{Model: nemo, Out: filepath.Join(root, "a.gguf")}, "llama.cpp's nemotron requires heads·head_dim = hidden", "llama.cpp cannot load a nemotron whose heads·head_dim ≠ hidden"},
		{GGUFOptions{Model: src, Out: filepath.Join(root, "a.gguf"), DType: "q4_k"}, "DType", "an unsupported dtype"},
		{GGUFOptions{Model: src, Out: existing}, "already exists", "an existing output"},
		{GGUFOptions{Model: filepath.Join(root, "nope"), Out: filepath.Join(root, "a.gguf")}, "Model ", "a missing model"},
		{GGUFOptions{Model: meta, Out: filepath.Join(root, "a.gguf")}, "none llama.cpp names", "a split pattern llama.cpp does not know"},
		{GGUFOptions{Model: src}, "Out is required", "no output"},
		{GGUFOptions{Model: "../model/testdata/cases/qwen3-bias-window", Out: filepath.Join(root, "a.gguf")}, "llama.cpp's qwen3 has no attention biases", "qwen3 with attention_bias: llama.cpp would drop the biases"},
	}
	for _, c := range cases {
		if _, err := GGUF(context.Background(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.reason, err, c.want)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Error("the existing output was overwritten")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := GGUF(ctx, GGUFOptions{Model: src, Out: filepath.Join(root, "a.gguf")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 4 {
		t.Errorf("refused exports left files: %v", ents)
	}
}

// Q8_0 blocks match ggml's reference quantizer on hand-checked values.
func TestQuantizeQ8_0(t *testing.T) {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i-16) / 16 // -1 … 0.9375; max |x| = 1
	}
	b := make([]byte, 34)
	quantizeQ8_0(x, b)
	d := make([]float32, 1)
	model.F16ToF32(b[:2], d)
	if math.Abs(float64(d[0])-1.0/127) > 1e-5 {
		t.Errorf("scale %v, want 1/127", d[0])
	}
	if int8(b[2]) != -127 || int8(b[2+16]) != 0 || int8(b[2+24]) != 64 { // 0.5·127 = 63.5 rounds away from zero
		t.Errorf("q = %d %d %d", int8(b[2]), int8(b[18]), int8(b[26]))
	}
	clear(x)
	quantizeQ8_0(x, b)
	for _, c := range b {
		if c != 0 {
			t.Fatal("an all-zero block is not all zeros")
		}
	}
}

// rope_freqs for llama3 scaling are the divisors that turn the unscaled
// frequencies into the scaled ones.
func TestRopeFactors(t *testing.T) {
	cfg := &model.Config{HeadDim: 64, PartialRotaryFactor: 1, RopeTheta: 500000, RopeScaling: &model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}}
	f, err := ropeFactors(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 32 || math.Abs(float64(f[0])-1) > 1e-6 || math.Abs(float64(f[31])-8) > 1e-5 {
		t.Errorf("factors %v: want 1 for the highest frequency, 8 for the lowest", f)
	}
}

// Tensors streamed in chunks of one row (one head for q/k) give the same
// file as whole-tensor reads, for every dtype.
func TestGGUFChunkedEqualsWhole(t *testing.T) {
	root := t.TempDir()
	for _, fam := range []model.Family{model.Llama, model.Nemotron} {
		dir := filepath.Join(root, string(fam))
		if _, err := model.Init(context.Background(), model.InitOptions{Out: dir, Family: fam, Seed: 2}); err != nil {
			t.Fatal(err)
		}
		for _, dt := range []GGUFDType{GGUFF32, GGUFQ8_0} {
			whole := filepath.Join(root, string(fam)+string(dt)+"-whole.gguf")
			if _, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: whole, DType: dt}); err != nil {
				t.Fatal(err)
			}
			old := ggufChunkElems
			ggufChunkElems = 1 // one unit (row, or head of rows) per chunk
			chunked := filepath.Join(root, string(fam)+string(dt)+"-chunked.gguf")
			_, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: chunked, DType: dt})
			ggufChunkElems = old
			if err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(whole)
			b, _ := os.ReadFile(chunked)
			if !bytes.Equal(a, b) {
				t.Errorf("%s %s: chunked export differs from the whole-tensor one", fam, dt)
			}
		}
	}
}

// A SentencePiece-style tokenizer.json becomes a llama vocabulary: byte
// pieces typed BYTE, <unk> UNKNOWN, specials CONTROL, and tokens made by
// merge i scored −(i+1), so llama.cpp merges in BPE order; layouts
// llama.cpp cannot reproduce are refused.
func TestGGUFSentencePieceJSON(t *testing.T) {
	cfg := &model.Config{VocabSize: 280}
	for _, file := range []string{"llama2-tiny.json", "metaspace-tiny.json"} {
		path := "../data/testdata/tok/" + file
		b, _ := os.ReadFile(path)
		v, err := spmJSONVocab(b, path, cfg, func() (*data.HFTokenizer, error) { return data.LoadHFTokenizer(path) })
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		kvs := map[string]kv{}
		for _, e := range v.kvs {
			kvs[e.key] = e
		}
		toks := kvs["tokenizer.ggml.tokens"].val.([]string)
		types := kvs["tokenizer.ggml.token_type"].val.([]int32)
		scores := kvs["tokenizer.ggml.scores"].val.([]float32)
		var tj struct {
			Model struct {
				Vocab  map[string]int `json:"vocab"`
				Merges []string       `json:"merges"`
			} `json:"model"`
		}
		if err := json.Unmarshal(b, &tj); err != nil {
			t.Fatal(err)
		}
		for s, id := range tj.Model.Vocab {
			want := int32(ttNormal)
			switch {
			case s == "<unk>":
				want = ttUnknown
			case s == "<s>" || s == "</s>":
				want = ttControl
			case isByteToken(s):
				want = ttByte
			}
			if toks[id] != s || types[id] != want {
				t.Errorf("%s: token %d = %q type %d, want %q type %d", file, id, toks[id], types[id], s, want)
			}
		}
		for i, m := range tj.Model.Merges {
			a, c, _ := strings.Cut(m, " ")
			if got := scores[tj.Model.Vocab[a+c]]; got != -float32(i+1) {
				t.Errorf("%s: merge %d (%q) scores %v", file, i, m, got)
			}
		}
		if !v.addBOS || v.addEOS {
			t.Errorf("%s: the template <s> A gives add_bos %t, add_eos %t", file, v.addBOS, v.addEOS)
		}
		if e := kvs["tokenizer.ggml.add_space_prefix"]; e.val != true {
			t.Errorf("%s: add_space_prefix %v", file, e.val)
		}
		if types[279] != ttUnused || toks[279] != "[PAD279]" {
			t.Errorf("%s: padding token %q type %d", file, toks[279], types[279])
		}
	}
	cases := []struct {
		norm, pre string
		reason    string
	}{
		{`{"type":"NFKC"}`, `null`, "a normalizer llama.cpp does not run"},
		{`null`, `{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":true}`, "Metaspace splitting at every ▁"},
		{`null`, `null`, "no space handling at all"},
	}
	for _, c := range cases {
		if _, err := spmPrefix(json.RawMessage(c.norm), json.RawMessage(c.pre)); err == nil {
			t.Errorf("%s: accepted", c.reason)
		}
	}
}

// A mistral sliding window shorter than the context is exported with a
// note: llama.cpp's llama attends to the whole context.
func TestGGUFSlidingWindowNote(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		window int
		note   bool
		reason string
	}{
		{0, false, "plain causal attention: nothing to say"},
		{16, true, "a window of 16 in a 512-token context differs beyond 16 tokens"},
	}
	for i, c := range cases {
		dir := filepath.Join(root, fmt.Sprint(i))
		if _, err := model.Init(context.Background(), model.InitOptions{Out: dir, Family: model.Mistral, SlidingWindow: c.window}); err != nil {
			t.Fatal(err)
		}
		res, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: dir + ".gguf"})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Notes) > 0 && strings.Contains(res.Notes[0], "sliding_window"); got != c.note {
			t.Errorf("%s: notes %q", c.reason, res.Notes)
		}
	}
}

// A Qwen tokenizer's NFC normalizer is exported with a note (llama.cpp
// applies none); the qwen2 checkpoint's sliding window gets one too.
func TestGGUFQwenNotes(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "q")
	if _, err := model.Init(context.Background(), model.InitOptions{Out: dir, Family: model.Qwen2, SlidingWindow: 64, Tokenizer: qwenTokenizer(t, root)}); err != nil {
		t.Fatal(err)
	}
	res, err := GGUF(context.Background(), GGUFOptions{Model: dir, Out: filepath.Join(root, "q.gguf")})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(res.Notes, "\n")
	if res.Arch != "qwen2" || res.Pre != "qwen2" || !strings.Contains(notes, "NFC normalizer") || !strings.Contains(notes, "llama.cpp's qwen2 architecture attends to the whole context") {
		t.Errorf("arch %s pre %s notes %q", res.Arch, res.Pre, res.Notes)
	}
}
