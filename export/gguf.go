package export

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// GGUFDType is the storage of a GGUF export's matrices (norms, biases and
// other 1-D tensors are always f32, as llama.cpp's converter stores them).
type GGUFDType string

const (
	GGUFF32  GGUFDType = "f32"
	GGUFF16  GGUFDType = "f16"
	GGUFBF16 GGUFDType = "bf16"
	GGUFQ8_0 GGUFDType = "q8_0"
)

// ParseGGUFDType accepts f32, f16, bf16 and q8_0 (any case).
func ParseGGUFDType(s string) (GGUFDType, error) {
	switch d := GGUFDType(strings.ToLower(s)); d {
	case GGUFF32, GGUFF16, GGUFBF16, GGUFQ8_0:
		return d, nil
	}
	return "", fmt.Errorf("unknown GGUF dtype %q (want f32, f16, bf16 or q8_0)", s)
}

// ggml is the tensor type of matrices and llama.cpp's general.file_type
// (LlamaFileType: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32).
func (d GGUFDType) ggml() (typ uint32, fileType int) {
	switch d {
	case GGUFF16:
		return ggmlF16, 1
	case GGUFBF16:
		return ggmlBF16, 32
	case GGUFQ8_0:
		return ggmlQ8_0, 7
	}
	return ggmlF32, 0
}

// GGUFOptions say what GGUF writes.
type GGUFOptions struct {
	Model string    // checkpoint directory (required)
	Out   string    // file to create (required; must not exist)
	DType GGUFDType // "" is F32
	// Name goes into general.name; "" is the model directory's name.
	Name string
}

// GGUFResult says what GGUF wrote.
type GGUFResult struct {
	Arch      string // llama.cpp's architecture name
	Tokenizer string // tokenizer.ggml.model: llama, gpt2, or none
	Pre       string // tokenizer.ggml.pre (gpt2 vocabularies)
	Tensors   int
	Bytes     int64
	// Notes are differences between minitron's model and what llama.cpp
	// will run (e.g. a sliding window llama.cpp's llama ignores).
	Notes []string
}

// ggufArch is llama.cpp's name for a family: mistral is "llama" there
// (convert_hf_to_gguf registers MistralForCausalLM under LlamaModel);
// qwen2 and qwen3 keep their names (Qwen2Model, Qwen3Model).
func ggufArch(f model.Family) (string, error) {
	switch f {
	case model.Llama, model.Mistral:
		return "llama", nil
	case model.Nemotron:
		return "nemotron", nil
	case model.Qwen2:
		return "qwen2", nil
	case model.Qwen3:
		return "qwen3", nil
	}
	return "", fmt.Errorf("family %q has no GGUF mapping (supported: llama, mistral, nemotron, qwen2, qwen3)", f)
}

// ggufNeoxRope reports an architecture llama.cpp runs with NEOX
// (rotate-half) RoPE, as HF does, so q/k rows keep their order; its llama
// runs GPT-J pairs and needs LlamaModel.permute.
func ggufNeoxRope(arch string) bool { return arch != "llama" }

// GGUF writes Model as one GGUF v3 file for llama.cpp: metadata under the
// keys llama.cpp's convert_hf_to_gguf.py writes, tensors under its names
// and layouts, and the tokenizer. Every option, the family and the
// tokenizer are checked before anything is written; the file is written
// beside Out and renamed into place when complete.
func GGUF(ctx context.Context, o GGUFOptions) (*GGUFResult, error) {
	if o.DType == "" {
		o.DType = GGUFF32
	}
	if _, err := ParseGGUFDType(string(o.DType)); err != nil {
		return nil, fmt.Errorf("DType: %w", err)
	}
	if err := checkOut("Out", o.Out); err != nil {
		return nil, err
	}
	ck, err := openModel(o.Model)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	cfg := ck.Config()
	arch, err := ggufArch(cfg.Family)
	if err != nil {
		return nil, fmt.Errorf("Model %s: %w", o.Model, err)
	}
	res := &GGUFResult{Arch: arch}
	name := o.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(o.Model))
	}
	kvs, err := ggufMetadata(cfg, arch, name, o.DType, res)
	if err != nil {
		return nil, fmt.Errorf("Model %s: %w", o.Model, err)
	}
	tok, err := ggufTokenizer(o.Model, cfg)
	if err != nil {
		return nil, fmt.Errorf("Model %s: tokenizer: %w", o.Model, err)
	}
	kvs = append(kvs, tok.kvs...)
	res.Tokenizer, res.Pre = tok.model, tok.pre
	res.Notes = append(res.Notes, tok.notes...)
	tensors, err := ggufTensors(ck, cfg, arch, o.DType)
	if err != nil {
		return nil, fmt.Errorf("Model %s: %w", o.Model, err)
	}
	res.Tensors = len(tensors)
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	tmp, err := newTemp(o.Out)
	if err != nil {
		return nil, err
	}
	defer tmp.cleanup()
	path := filepath.Join(tmp.path, "model.gguf")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	n, err := writeGGUF(f, kvs, tensors, ctx.Err)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	res.Bytes = n
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := tmp.publish(path); err != nil {
		return nil, err
	}
	return res, nil
}

// ggufMetadata is general.* and {arch}.* as convert_hf_to_gguf.py writes
// them for LlamaModel, NemotronModel, Qwen2Model and Qwen3Model.
func ggufMetadata(cfg *model.Config, arch, name string, dt GGUFDType, res *GGUFResult) ([]kv, error) {
	_, fileType := dt.ggml()
	p := arch + "."
	kvs := []kv{
		kvString("general.architecture", arch),
		kvString("general.type", "model"),
		kvString("general.name", name),
		kvU32("general.alignment", ggufAlignment),
		kvU32("general.file_type", fileType),
		kvU32("general.quantization_version", 2),
		kvU32(p+"vocab_size", cfg.VocabSize),
		kvU32(p+"context_length", cfg.MaxPositionEmbeddings),
		kvU32(p+"embedding_length", cfg.HiddenSize),
		kvU32(p+"block_count", cfg.NumLayers),
		kvU32(p+"feed_forward_length", cfg.IntermediateSize),
		kvU32(p+"attention.head_count", cfg.NumHeads),
		kvU32(p+"attention.head_count_kv", cfg.NumKVHeads),
		// Always written: a pruned student's head_dim need not be
		// hidden/heads, which is llama.cpp's default.
		kvU32(p+"attention.key_length", cfg.HeadDim),
		kvU32(p+"attention.value_length", cfg.HeadDim),
		kvF32(p+"rope.freq_base", cfg.RopeTheta),
		// Nemotron rotates only the first int(hd·partial_rotary_factor)
		// dims. convert_hf_to_gguf computes int(pct·hidden)//heads, which
		// is wrong once head_dim ≠ hidden/heads; this is the model's own.
		kvU32(p+"rope.dimension_count", cfg.RotaryDim()),
	}
	if cfg.Family == model.Nemotron {
		if cfg.QDim() != cfg.HiddenSize {
			// Checked with llama.cpp's own loader (models/nemotron.cpp):
			// it shapes attn_q and attn_output as hidden×hidden and
			// refuses the file. llama.cpp's llama takes such shapes.
			return nil, fmt.Errorf("nemotron with heads·head_dim = %d·%d = %d ≠ hidden %d: llama.cpp's nemotron requires heads·head_dim = hidden (its loader shapes attn_q and attn_output hidden×hidden), so it could not load this file; keep head_dim = hidden/heads when pruning for llama.cpp, or export hf",
				cfg.NumHeads, cfg.HeadDim, cfg.QDim(), cfg.HiddenSize)
		}
		kvs = append(kvs, kvF32(p+"attention.layer_norm_epsilon", cfg.NormEps))
		if cfg.HiddenAct != "" && cfg.HiddenAct != "relu2" {
			return nil, fmt.Errorf("nemotron hidden_act %q: llama.cpp's nemotron runs relu2 only", cfg.HiddenAct)
		}
	} else {
		kvs = append(kvs, kvF32(p+"attention.layer_norm_rms_epsilon", cfg.NormEps))
		if cfg.HiddenAct != "" && cfg.HiddenAct != "silu" {
			return nil, fmt.Errorf("%s hidden_act %q: llama.cpp's %s runs silu only", cfg.Family, cfg.HiddenAct, arch)
		}
	}
	if cfg.Family == model.Qwen3 && (cfg.QKVBias() || cfg.OBias()) {
		// llama.cpp's qwen3 loads no attention biases (models/qwen3.cpp).
		return nil, fmt.Errorf("qwen3 with attention_bias: llama.cpp's qwen3 has no attention biases, so it would run another model; export hf")
	}
	if arch != "llama" && cfg.MLPBias {
		return nil, fmt.Errorf("%s with mlp_bias: llama.cpp's %s has no MLP biases; export hf", cfg.Family, arch)
	}
	if s := cfg.RopeScaling; s != nil {
		switch s.Type {
		case "linear":
			kvs = append(kvs, kvString(p+"rope.scaling.type", "linear"), kvF32(p+"rope.scaling.factor", s.Factor))
		case "llama3":
			// Carried by the rope_freqs tensor (ggufTensors), as the
			// converter does; no scaling keys.
			if arch != "llama" {
				return nil, fmt.Errorf("rope_scaling llama3 on %s: llama.cpp reads rope_freqs for llama only", arch)
			}
		default:
			return nil, fmt.Errorf("rope_scaling %q has no GGUF mapping", s.Type)
		}
	}
	if cfg.SlidingWindow > 0 && cfg.SlidingWindow < cfg.MaxPositionEmbeddings {
		res.Notes = append(res.Notes, fmt.Sprintf("sliding_window %d: llama.cpp's %s architecture attends to the whole context, so outputs differ beyond %d tokens", cfg.SlidingWindow, arch, cfg.SlidingWindow))
	}
	return kvs, nil
}

// ggufTensors maps every checkpoint tensor to llama.cpp's name and layout.
func ggufTensors(ck *model.Checkpoint, cfg *model.Config, arch string, dt GGUFDType) ([]*ggufTensor, error) {
	matType, _ := dt.ggml()
	var out []*ggufTensor
	// add maps one HF tensor, read in chunks of whole rows (whole heads
	// when perm: permuteRows works head by head); fix (optional)
	// transforms a chunk of its f32 values.
	add := func(hf, name string, perm int, fix func([]float32)) error {
		info, ok := ck.Info(hf)
		if !ok {
			return fmt.Errorf("tensor %s missing", hf)
		}
		t := &ggufTensor{name: name, shape: info.Shape, typ: matType}
		if len(info.Shape) == 1 || strings.HasSuffix(name, "_norm.weight") {
			t.typ = ggmlF32 // as convert_hf_to_gguf: 1-D tensors and norms stay f32
		}
		if t.typ == ggmlQ8_0 && info.Shape[len(info.Shape)-1]%q8Block != 0 {
			t.typ = ggmlF16 // the converter's fallback for rows that do not fill blocks
		}
		cols := 1
		if len(info.Shape) == 2 {
			cols = info.Shape[1]
		}
		t.unit = cols
		if perm > 0 {
			t.unit = cols * cfg.HeadDim
		}
		t.read = func(off int, dst []float32) error {
			if err := ck.ReadF32Range(hf, off, dst); err != nil {
				return err
			}
			if off+len(dst) == int(t.elems()) {
				ck.Release(hf)
			}
			if perm > 0 {
				permuteRows(dst, len(dst)/t.unit, cfg.HeadDim)
			}
			if fix != nil {
				fix(dst)
			}
			return nil
		}
		out = append(out, t)
		return nil
	}
	// zeros adds a tensor llama.cpp requires but the checkpoint lacks.
	zeros := func(name string, n int) {
		out = append(out, &ggufTensor{name: name, shape: []int{n}, typ: ggmlF32, read: func(_ int, dst []float32) error {
			clear(dst)
			return nil
		}})
	}
	plusOne := func(x []float32) {
		for i := range x {
			x[i]++
		}
	}
	has := func(n string) bool { _, ok := ck.Info(n); return ok }
	nemo := arch == "nemotron"
	// Norm weights: nemotron's LayerNorm1P is (w+1); llama.cpp's
	// nemotron runs a plain LayerNorm, so the converter adds 1, as here.
	norm := func(hf, name string) error {
		var fix func([]float32)
		if nemo {
			fix = plusOne
		}
		if err := add(hf+".weight", name+".weight", 0, fix); err != nil {
			return err
		}
		if has(hf + ".bias") {
			return add(hf+".bias", name+".bias", 0, nil)
		}
		if nemo {
			zeros(name+".bias", cfg.HiddenSize) // llama.cpp's nemotron requires the bias
		}
		return nil
	}
	// llama.cpp's llama applies RoPE to interleaved pairs (GPT-J style);
	// HF rotates halves, so q/k rows are permuted within each head as
	// LlamaModel.permute does. Nemotron, qwen2 and qwen3 run NEOX
	// (rotate-half) RoPE in llama.cpp: no permutation.
	permute := 1
	if ggufNeoxRope(arch) {
		permute = 0
	}

	if err := add("model.embed_tokens.weight", "token_embd.weight", 0, nil); err != nil {
		return nil, err
	}
	if cfg.Family == model.Llama && cfg.RopeScaling != nil && cfg.RopeScaling.Type == "llama3" {
		f, err := ropeFactors(cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, &ggufTensor{name: "rope_freqs.weight", shape: []int{len(f)}, typ: ggmlF32,
			read: func(_ int, dst []float32) error { copy(dst, f); return nil }})
	}
	for l := range cfg.NumLayers {
		hp, gp := model.LayerPrefix(l), fmt.Sprintf("blk.%d.", l)
		if err := norm(hp+"input_layernorm", gp+"attn_norm"); err != nil {
			return nil, err
		}
		for _, p := range []struct {
			hf, g string
			perm  int
		}{
			{"self_attn.q_proj", "attn_q", permute},
			{"self_attn.k_proj", "attn_k", permute},
			{"self_attn.v_proj", "attn_v", 0},
			{"self_attn.o_proj", "attn_output", 0},
		} {
			if err := add(hp+p.hf+".weight", gp+p.g+".weight", p.perm, nil); err != nil {
				return nil, err
			}
			if has(hp + p.hf + ".bias") {
				if err := add(hp+p.hf+".bias", gp+p.g+".bias", p.perm, nil); err != nil {
					return nil, err
				}
			}
		}
		if cfg.QKNorm() {
			// qwen3's per-head RMSNorm weights [head_dim], f32 like every norm.
			if err := add(hp+"self_attn.q_norm.weight", gp+"attn_q_norm.weight", 0, nil); err != nil {
				return nil, err
			}
			if err := add(hp+"self_attn.k_norm.weight", gp+"attn_k_norm.weight", 0, nil); err != nil {
				return nil, err
			}
		}
		if err := norm(hp+"post_attention_layernorm", gp+"ffn_norm"); err != nil {
			return nil, err
		}
		mlp := []string{"up_proj", "ffn_up", "down_proj", "ffn_down"}
		if cfg.GatedMLP() {
			mlp = append([]string{"gate_proj", "ffn_gate"}, mlp...)
		}
		for i := 0; i < len(mlp); i += 2 {
			if err := add(hp+"mlp."+mlp[i]+".weight", gp+mlp[i+1]+".weight", 0, nil); err != nil {
				return nil, err
			}
			if has(hp + "mlp." + mlp[i] + ".bias") {
				if err := add(hp+"mlp."+mlp[i]+".bias", gp+mlp[i+1]+".bias", 0, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := norm("model.norm", "output_norm"); err != nil {
		return nil, err
	}
	// output.weight is written even when tied (a copy of the embedding):
	// llama.cpp's nemotron requires it, and it keeps every arch alike.
	head := "lm_head.weight"
	if cfg.TieWordEmbeddings || !has(head) {
		head = "model.embed_tokens.weight"
	}
	if err := add(head, "output.weight", 0, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// permuteRows reorders the rows of a [heads·hd, cols] matrix (or a bias of
// heads·hd) in place as llama.cpp's LlamaModel.permute:
// reshape(heads, 2, hd/2, cols).swapaxes(1, 2), so row 2i+j of a head
// takes the old row j·hd/2+i.
func permuteRows(x []float32, heads, hd int) {
	cols := len(x) / (heads * hd)
	head := make([]float32, hd*cols)
	for h := range heads {
		blk := x[h*hd*cols : (h+1)*hd*cols]
		copy(head, blk)
		for i := range hd / 2 {
			for j := range 2 {
				copy(blk[(2*i+j)*cols:(2*i+j+1)*cols], head[(j*hd/2+i)*cols:(j*hd/2+i+1)*cols])
			}
		}
	}
}

// ropeFactors is llama.cpp's rope_freqs for llama3 scaling: per frequency
// the divisor ggml applies to the unscaled one, i.e. unscaled/scaled.
func ropeFactors(cfg *model.Config) ([]float32, error) {
	s := cfg.RopeScaling
	base, err := kernels.RopeInvFreq(cfg.RotaryDim(), cfg.RopeTheta, nil)
	if err != nil {
		return nil, err
	}
	scaled, err := kernels.RopeInvFreq(cfg.RotaryDim(), cfg.RopeTheta, &kernels.RopeScaling{Type: s.Type, Factor: s.Factor,
		LowFreqFactor: s.LowFreqFactor, HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositionEmbeddings})
	if err != nil {
		return nil, err
	}
	f := make([]float32, len(base))
	for i := range f {
		f[i] = float32(float64(base[i]) / float64(scaled[i]))
	}
	return f, nil
}
