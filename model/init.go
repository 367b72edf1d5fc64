package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/internal/atomicfile"
)

// InitSize is a named shape for Init.
type InitSize struct {
	Name                                                string
	Layers, Hidden, Heads, KVHeads, HeadDim, FFN, Vocab int
	MaxPositions                                        int
	About                                               string
}

// InitSizes are the shapes Init knows by name: small ones for tests and
// experiments, and the papers' (and common teachers') shapes for
// exercising real sizes (their random weights stream to disk, so they need
// disk, not RAM). Only the dimensions are taken; RoPE and norm settings are
// the family's defaults.
var InitSizes = []InitSize{
	{"tiny", 2, 64, 4, 2, 0, 256, 256, 512, "tests and examples (~0.1M parameters)"},
	{"small", 4, 256, 4, 2, 0, 1024, 4096, 2048, "the reproduce teacher's shape (~5M)"},
	{"100m", 8, 768, 12, 4, 0, 3072, 32000, 4096, "the GPU goal shape (~100M)"},
	{"minitron-4b", 32, 3072, 24, 8, 128, 9216, 256000, 4096, "Minitron-4B (4.19B as nemotron)"},
	{"minitron-8b", 32, 4096, 48, 8, 128, 16384, 256000, 4096, "Minitron-8B (8.27B as nemotron)"},
	{"nemotron-4-15b", 32, 6144, 48, 8, 128, 24576, 256000, 4096, "Nemotron-4 15B"},
	{"llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, 128256, 131072, "Llama-3.1-8B's dimensions"},
	{"llama-3.1-minitron-4b", 32, 3072, 32, 8, 128, 9216, 128256, 131072, "Llama-3.1-Minitron-4B-Width's dimensions"},
	{"mistral-7b", 32, 4096, 32, 8, 128, 14336, 32768, 32768, "Mistral-7B v0.3's dimensions"},
	{"qwen2.5-7b", 28, 3584, 28, 4, 128, 18944, 152064, 131072, "Qwen2.5-7B's dimensions (7.62B as qwen2)"},
	{"qwen3-0.6b", 28, 1024, 16, 8, 128, 3072, 151936, 40960, "Qwen3-0.6B's dimensions (head_dim 128 ≠ H/heads; tie embeddings for its 0.6B)"},
	{"qwen3-8b", 36, 4096, 32, 8, 128, 12288, 151936, 40960, "Qwen3-8B's dimensions (8.19B as qwen3)"},
}

// InitOptions describe a new random checkpoint (Init). Zero dimensions take
// Size's; Size "" is "tiny".
type InitOptions struct {
	Out       string
	Overwrite bool // replace an existing checkpoint directory at Out

	Family Family // nemotron, llama, mistral, qwen2 or qwen3 (required)
	Size   string // a name of InitSizes

	Layers, Hidden, Heads, KVHeads, HeadDim, FFN int
	// Vocab defaults to the tokenizer's size with a Tokenizer, else Size's;
	// it may exceed the tokenizer's (padded embeddings), never fall short.
	Vocab         int
	MaxPositions  int
	TieEmbeddings bool
	SlidingWindow int     // mistral, qwen2, qwen3 (every layer); 0: plain causal
	RopeTheta     float64 // 0: 10000

	// BOS and EOS: nil takes the tokenizer's special tokens (none without
	// a Tokenizer); BOS -1 or a non-nil empty EOS means none.
	BOS *int
	EOS []int

	// Tokenizer is a tokenizer file (tokenizer.json or a SentencePiece
	// .model) or a directory holding one (a checkpoint, a tokenizer
	// train output); its files are copied into Out.
	Tokenizer string

	DType      DType   // stored dtype; "" is F32
	Seed       uint64  // weights are a function of (Seed, tensor name, index)
	Std        float64 // noise of every weight; 0 is 0.02 (see RandomSource)
	ShardBytes int64   // largest safetensors shard; 0: one file
}

// InitResult says what Init wrote.
type InitResult struct {
	Config         *Config
	Params         ParamCounts
	TokenizerFiles []string // copied into Out
	Bytes          int64    // weight bytes as stored
}

// FindInitSize returns the named shape.
func FindInitSize(name string) (InitSize, error) {
	for _, s := range InitSizes {
		if strings.EqualFold(s.Name, name) {
			return s, nil
		}
	}
	var names []string
	for _, s := range InitSizes {
		names = append(names, s.Name)
	}
	return InitSize{}, fmt.Errorf("unknown Size %q (want one of %s)", name, strings.Join(names, ", "))
}

// InitConfig is the config Init would write, after every check that needs
// no file but the tokenizer: for dry runs and for Init itself.
func InitConfig(o InitOptions) (*Config, data.Tokenizer, error) {
	switch o.Family {
	case Nemotron, Llama, Mistral, Qwen2, Qwen3:
	case "":
		return nil, nil, fmt.Errorf("Family is required (%s)", supportedFamilies)
	default:
		return nil, nil, fmt.Errorf("unsupported Family %q (want %s)", o.Family, supportedFamilies)
	}
	if o.Size == "" {
		o.Size = "tiny"
	}
	sz, err := FindInitSize(o.Size)
	if err != nil {
		return nil, nil, err
	}
	var tok data.Tokenizer
	if o.Tokenizer != "" {
		if tok, err = data.LoadTokenizer(o.Tokenizer); err != nil {
			return nil, nil, fmt.Errorf("Tokenizer: %w", err)
		}
		if o.Vocab == 0 {
			o.Vocab = tok.VocabSize()
		} else if o.Vocab < tok.VocabSize() {
			return nil, nil, fmt.Errorf("Vocab %d is smaller than the %d ids of tokenizer %s", o.Vocab, tok.VocabSize(), o.Tokenizer)
		}
	}
	pick := func(v, def int) int {
		if v != 0 {
			return v
		}
		return def
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"Layers", o.Layers}, {"Hidden", o.Hidden}, {"Heads", o.Heads}, {"KVHeads", o.KVHeads}, {"HeadDim", o.HeadDim},
		{"FFN", o.FFN}, {"Vocab", o.Vocab}, {"MaxPositions", o.MaxPositions}, {"SlidingWindow", o.SlidingWindow}} {
		if d.v < 0 {
			return nil, nil, fmt.Errorf("%s must be positive, got %d", d.name, d.v)
		}
	}
	if o.SlidingWindow > 0 && (o.Family == Nemotron || o.Family == Llama) {
		return nil, nil, fmt.Errorf("SlidingWindow is a mistral, qwen2 or qwen3 setting; Family is %s", o.Family)
	}
	heads := pick(o.Heads, sz.Heads)
	kv := pick(o.KVHeads, sz.KVHeads)
	if o.Heads != 0 && o.KVHeads == 0 && heads%kv != 0 {
		kv = heads // a head count that does not split into the size's groups: plain multi-head
	}
	hidden := pick(o.Hidden, sz.Hidden)
	hd := o.HeadDim
	if hd == 0 && (o.Hidden != 0 || o.Heads != 0 || sz.HeadDim == 0) {
		if hidden%heads != 0 {
			return nil, nil, fmt.Errorf("Hidden %d is not a multiple of Heads %d: give HeadDim", hidden, heads)
		}
		hd = hidden / heads
	} else if hd == 0 {
		hd = sz.HeadDim
	}
	if heads%kv != 0 {
		return nil, nil, fmt.Errorf("Heads %d is not a multiple of KVHeads %d", heads, kv)
	}
	if hd%2 != 0 {
		return nil, nil, fmt.Errorf("HeadDim %d must be even for RoPE", hd)
	}
	std := o.Std
	if std < 0 {
		return nil, nil, fmt.Errorf("Std must not be negative, got %v", std)
	}
	theta := o.RopeTheta
	if theta == 0 {
		theta = 10000
	}
	c := &Config{
		Family: o.Family, Architectures: []string{initArchitecture[o.Family]},
		HiddenSize: hidden, IntermediateSize: pick(o.FFN, sz.FFN), NumLayers: pick(o.Layers, sz.Layers),
		NumHeads: heads, NumKVHeads: kv, HeadDim: hd, VocabSize: pick(o.Vocab, sz.Vocab),
		MaxPositionEmbeddings: pick(o.MaxPositions, sz.MaxPositions), TieWordEmbeddings: o.TieEmbeddings,
		RopeTheta: theta, PartialRotaryFactor: 1, SlidingWindow: o.SlidingWindow, NormEps: defaultNormEps(o.Family),
		HiddenAct:  defaultHiddenAct[o.Family],
		BOSTokenID: -1, Extra: map[string]json.RawMessage{},
	}
	if o.Family == Nemotron {
		c.PartialRotaryFactor = 0.5
	}
	switch {
	case o.BOS != nil:
		c.BOSTokenID = *o.BOS
	case tok != nil:
		c.BOSTokenID = tok.BOS()
	}
	switch {
	case o.EOS != nil:
		c.EOSTokenIDs = slices.Clone(o.EOS)
	case tok != nil && tok.EOS() >= 0:
		c.EOSTokenIDs = []int{tok.EOS()}
	}
	if c.BOSTokenID < -1 || c.BOSTokenID >= c.VocabSize {
		return nil, nil, fmt.Errorf("BOS %d is outside the vocabulary [0, %d) (-1: none)", c.BOSTokenID, c.VocabSize)
	}
	for _, e := range c.EOSTokenIDs {
		if e < 0 || e >= c.VocabSize {
			return nil, nil, fmt.Errorf("EOS %d is outside the vocabulary [0, %d)", e, c.VocabSize)
		}
	}
	switch o.DType {
	case "", F32:
		c.TorchDType = "float32"
	case BF16:
		c.TorchDType = "bfloat16"
	case F16:
		c.TorchDType = "float16"
	default:
		return nil, nil, fmt.Errorf("unsupported DType %q (want F32, BF16 or F16)", o.DType)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, tok, nil
}

// ErrOutExists is Init's error for a non-empty Out without Overwrite.
var ErrOutExists = errors.New("exists and is not empty")

var initArchitecture = map[Family]string{Nemotron: "NemotronForCausalLM", Llama: "LlamaForCausalLM", Mistral: "MistralForCausalLM",
	Qwen2: "Qwen2ForCausalLM", Qwen3: "Qwen3ForCausalLM"}

// Init writes a random-init checkpoint (see RandomSource) of the shape o
// describes to o.Out, with the tokenizer's files when o.Tokenizer is set.
// Everything is checked first; the checkpoint is built in a temporary
// directory beside Out and renamed into place when complete. An existing
// Out is refused unless it is an empty directory, or Overwrite is set and
// it is a checkpoint directory (it holds config.json), which is replaced
// whole. Temporaries of an earlier, killed Init of the same Out are
// removed; a cancelled ctx stops the writing and leaves nothing behind.
func Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	if o.Out == "" {
		return nil, errors.New("Out is required")
	}
	cfg, tok, err := InitConfig(o)
	if err != nil {
		return nil, err
	}
	replace, err := checkInitOut(o.Out, o.Overwrite)
	if err != nil {
		return nil, err
	}
	dt := o.DType
	if dt == "" {
		dt = F32
	}
	// beside Out, after removing what a killed Init left there
	tmp, err := atomicfile.TempDir(o.Out, "init-tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rs := NewRandomSource(cfg, dt, o.Seed)
	if o.Std > 0 {
		rs.Std = o.Std
	}
	if err := SaveCheckpoint(tmp, cfg, &ctxSource{rs, ctx}, SaveOptions{DType: dt, ShardBytes: o.ShardBytes,
		Metadata: map[string]string{"minitron_init": fmt.Sprintf("random seed=%d std=%g", o.Seed, rs.Std)}}); err != nil {
		return nil, err
	}
	res := &InitResult{Config: cfg, Params: cfg.ParamCounts(), Bytes: F32WeightBytes(cfg) / 4 * int64(dt.Size())}
	if tok != nil {
		if res.TokenizerFiles, err = copyInitTokenizer(o.Tokenizer, tmp); err != nil {
			return nil, err
		}
		// The copy must load as the original did (same ids).
		got, err := data.LoadTokenizer(tmp)
		if err != nil {
			return nil, fmt.Errorf("Tokenizer %s: the copied files do not load: %w", o.Tokenizer, err)
		}
		if got.Identity() != tok.Identity() || got.VocabSize() != tok.VocabSize() {
			return nil, fmt.Errorf("Tokenizer %s: the copied files load as %s (%d ids), not as the original %s (%d ids)",
				o.Tokenizer, got.Identity(), got.VocabSize(), tok.Identity(), tok.VocabSize())
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if replace {
		// Move the old checkpoint aside first: a rename cannot replace a
		// non-empty directory, and the old one goes only once the new one
		// is in place.
		old := tmp + ".old"
		if err := os.Rename(o.Out, old); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, o.Out); err != nil {
			os.Rename(old, o.Out)
			return nil, err
		}
		return res, os.RemoveAll(old)
	}
	if err := os.Remove(o.Out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err // an empty directory, checked above
	}
	return res, os.Rename(tmp, o.Out)
}

// ctxSource stops a checkpoint write when ctx is done: SaveCheckpoint
// reads in chunks, so a Ctrl-C is seen within one chunk.
type ctxSource struct {
	*RandomSource
	ctx context.Context
}

func (s *ctxSource) ReadF32(name string, dst []float32) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return s.RandomSource.ReadF32(name, dst)
}

func (s *ctxSource) ReadF32Range(name string, off int, dst []float32) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return s.RandomSource.ReadF32Range(name, off, dst)
}

// checkInitOut reports whether out exists and is to be replaced, or why it
// cannot be written.
func checkInitOut(out string, overwrite bool) (replace bool, err error) {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("Out %s exists and is not a directory", out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return false, err
	}
	if len(ents) == 0 {
		return false, nil
	}
	if !overwrite {
		return false, fmt.Errorf("Out %s %w (Overwrite replaces a checkpoint there)", out, ErrOutExists)
	}
	if _, err := os.Stat(filepath.Join(out, ConfigFile)); err != nil {
		// Overwrite replaces a checkpoint, never some other directory.
		return false, fmt.Errorf("Out %s holds no %s: not a checkpoint directory, so Overwrite does not replace it", out, ConfigFile)
	}
	return true, nil
}

// copyInitTokenizer copies a tokenizer (file or directory) into dst under
// the names the loaders look for.
func copyInitTokenizer(src, dst string) ([]string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	copyAs := func(from, name string) error {
		b, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(dst, name), b, nil)
	}
	var copied []string
	if !st.IsDir() {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		name := "tokenizer.model"
		if isJSONText(b) {
			name = "tokenizer.json"
		}
		if err := atomicfile.WriteFile(filepath.Join(dst, name), b, nil); err != nil {
			return nil, err
		}
		copied = append(copied, name)
		// A tokenizer.json's special tokens may come from the
		// tokenizer_config.json beside it (data.LoadHFTokenizer).
		if cfg := filepath.Join(filepath.Dir(src), "tokenizer_config.json"); name == "tokenizer.json" && fileExists(cfg) {
			if err := copyAs(cfg, "tokenizer_config.json"); err != nil {
				return nil, err
			}
			copied = append(copied, "tokenizer_config.json")
		}
		return copied, nil
	}
	for _, n := range append(slices.Clone(TokenizerFiles), "vocab.json", "merges.txt") {
		// generation_config.json belongs to the source's model: its
		// eos_token_id would override this checkpoint's.
		if n == "generation_config.json" || !fileExists(filepath.Join(src, n)) {
			continue
		}
		if err := copyAs(filepath.Join(src, n), n); err != nil {
			return nil, err
		}
		copied = append(copied, n)
	}
	if !slices.Contains(copied, "tokenizer.json") && !slices.Contains(copied, "tokenizer.model") {
		// NeMo names the SentencePiece file after the tokenizer.
		if ms, _ := filepath.Glob(filepath.Join(src, "*.model")); len(ms) == 1 {
			if err := copyAs(ms[0], "tokenizer.model"); err != nil {
				return nil, err
			}
			copied = append(copied, "tokenizer.model")
		}
	}
	return copied, nil
}

func isJSONText(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
