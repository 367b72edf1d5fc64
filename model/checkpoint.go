package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// HF file names of a checkpoint directory.
const (
	ConfigFile       = "config.json"
	SafetensorsFile1 = "model.safetensors"
	IndexFile        = "model.safetensors.index.json"
)

// Checkpoint is an opened Hugging Face checkpoint directory: its config and
// its memory-mapped safetensors (one file or shards named by an index). It
// implements TensorSource and is safe for concurrent readers.
type Checkpoint struct {
	dir        string
	cfg        *Config
	files      []*SafetensorsFile
	byName     map[string]*SafetensorsFile
	names      []string
	unexpected []string
	sharded    bool
}

// OpenCheckpoint opens dir (config.json plus model.safetensors or
// model.safetensors.index.json and its shards), validates every safetensors
// header and checks each tensor the config implies for presence and shape.
// Extra tensors (rotary inv_freq buffers and the like) are tolerated and
// listed by Unexpected.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	cfg, err := LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	c, err := openWeights(dir)
	if err != nil {
		return nil, err
	}
	c.cfg = cfg
	unexpected, err := ValidateTensors(cfg, c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("checkpoint %s does not match its config.json: %w", dir, err)
	}
	c.unexpected = unexpected
	return c, nil
}

// openWeights maps the safetensors of dir without looking at the config.
func openWeights(dir string) (*Checkpoint, error) {
	c := &Checkpoint{dir: dir, byName: map[string]*SafetensorsFile{}}
	single := filepath.Join(dir, SafetensorsFile1)
	index := filepath.Join(dir, IndexFile)
	if _, err := os.Stat(single); err == nil {
		f, err := OpenSafetensors(single)
		if err != nil {
			return nil, err
		}
		c.files = []*SafetensorsFile{f}
		for _, n := range f.names {
			c.byName[n] = f
		}
	} else if _, err := os.Stat(index); err == nil {
		if err := c.openShards(index); err != nil {
			c.Close()
			return nil, err
		}
		c.sharded = true
	} else {
		return nil, fmt.Errorf("checkpoint %s: no %s or %s", dir, SafetensorsFile1, IndexFile)
	}
	c.names = make([]string, 0, len(c.byName))
	for n := range c.byName {
		c.names = append(c.names, n)
	}
	sort.Strings(c.names)
	return c, nil
}

// ShardIndex is model.safetensors.index.json.
type ShardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// ReadShardIndex parses and checks an index file: a weight_map of tensor
// name to a plain file name inside the index's directory.
func ReadShardIndex(path string) (*ShardIndex, error) {
	b, err := readRegular(path)
	if err != nil {
		return nil, err
	}
	var idx ShardIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: not a valid shard index: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: weight_map is missing or empty", path)
	}
	for name, file := range idx.WeightMap {
		if !filepath.IsLocal(file) || strings.ContainsAny(file, `/\`) {
			return nil, fmt.Errorf("%s: tensor %q maps to %q, which is not a file name in the checkpoint directory", path, name, file)
		}
	}
	return &idx, nil
}

func (c *Checkpoint) openShards(indexPath string) error {
	idx, err := ReadShardIndex(indexPath)
	if err != nil {
		return err
	}
	files := map[string]*SafetensorsFile{}
	var shardNames []string
	for _, f := range idx.WeightMap {
		if _, ok := files[f]; !ok {
			files[f] = nil
			shardNames = append(shardNames, f)
		}
	}
	sort.Strings(shardNames)
	for _, name := range shardNames {
		p := filepath.Join(c.dir, name)
		f, err := OpenSafetensors(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s: shard file %s is missing (named by the index)", indexPath, p)
			}
			return err
		}
		files[name] = f
		c.files = append(c.files, f)
	}
	// Every mapped tensor must be in its shard, and a shard must hold
	// nothing the index does not place there (that would make loaders
	// disagree about which copy is real).
	tnames := make([]string, 0, len(idx.WeightMap))
	for n := range idx.WeightMap {
		tnames = append(tnames, n)
	}
	sort.Strings(tnames)
	for _, n := range tnames {
		f := files[idx.WeightMap[n]]
		if _, ok := f.byName[n]; !ok {
			return fmt.Errorf("%s: tensor %q is mapped to %s, but that shard does not contain it", indexPath, n, f.path)
		}
		c.byName[n] = f
	}
	for _, f := range c.files {
		for _, n := range f.names {
			if c.byName[n] != f {
				if _, listed := idx.WeightMap[n]; listed {
					return fmt.Errorf("%s: tensor %q is in shard %s but the index maps it to %s", indexPath, n, f.path, idx.WeightMap[n])
				}
				return fmt.Errorf("%s: shard %s holds tensor %q, which the index does not list", indexPath, f.path, n)
			}
		}
	}
	return nil
}

// Config is the parsed config.json.
func (c *Checkpoint) Config() *Config { return c.cfg }

// Dir is the checkpoint directory.
func (c *Checkpoint) Dir() string { return c.dir }

// Sharded reports whether the weights came from an index and shards.
func (c *Checkpoint) Sharded() bool { return c.sharded }

// Files lists the safetensors paths in use.
func (c *Checkpoint) Files() []string {
	out := make([]string, len(c.files))
	for i, f := range c.files {
		out[i] = f.path
	}
	return out
}

// BytesOnDisk is the total size of the safetensors files.
func (c *Checkpoint) BytesOnDisk() int64 {
	var n int64
	for _, f := range c.files {
		n += f.Size()
	}
	return n
}

// Metadata is the __metadata__ of the first safetensors file (HF writes the
// same map into every shard), nil when absent.
func (c *Checkpoint) Metadata() map[string]string {
	if len(c.files) == 0 {
		return nil
	}
	return c.files[0].Metadata()
}

// Unexpected lists tensors the config does not call for (sorted); they are
// tolerated, e.g. rotary inv_freq buffers of older exports.
func (c *Checkpoint) Unexpected() []string { return slices.Clone(c.unexpected) }

// DTypeCounts counts tensors per stored dtype.
func (c *Checkpoint) DTypeCounts() map[DType]int {
	m := map[DType]int{}
	for n, f := range c.byName {
		m[f.byName[n].DType]++
	}
	return m
}

// HasNormBias reports whether the norms carry a bias (nemotron LayerNorm1P).
func (c *Checkpoint) HasNormBias() bool {
	_, ok := c.byName["model.norm.bias"]
	return ok
}

// Close unmaps every file; the Checkpoint must not be used afterwards.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.files = nil
	return first
}

// Info implements TensorSource.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	f, ok := c.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Names implements TensorSource (sorted).
func (c *Checkpoint) Names() []string { return slices.Clone(c.names) }

// ReadF32 implements TensorSource.
func (c *Checkpoint) ReadF32(name string, dst []float32) error {
	f, ok := c.byName[name]
	if !ok {
		return fmt.Errorf("checkpoint %s: no tensor %q", c.dir, name)
	}
	return f.ReadF32(name, dst)
}

// ReadF32Range implements RangeReader.
func (c *Checkpoint) ReadF32Range(name string, off int, dst []float32) error {
	f, ok := c.byName[name]
	if !ok {
		return fmt.Errorf("checkpoint %s: no tensor %q", c.dir, name)
	}
	return f.ReadF32Range(name, off, dst)
}

// Release implements Releaser: drops the tensor's mapped pages from the
// resident set.
func (c *Checkpoint) Release(name string) {
	if f, ok := c.byName[name]; ok {
		f.Release(name)
	}
}

// Prefetch implements Releaser: starts paging the tensor in.
func (c *Checkpoint) Prefetch(name string) {
	if f, ok := c.byName[name]; ok {
		f.Prefetch(name)
	}
}

// Raw returns the stored bytes of a tensor zero-copy (valid until Close).
func (c *Checkpoint) Raw(name string) ([]byte, TensorInfo, error) {
	f, ok := c.byName[name]
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("checkpoint %s: no tensor %q", c.dir, name)
	}
	return f.Raw(name)
}

// LayerPrefix is "model.layers.{i}.".
func LayerPrefix(i int) string { return fmt.Sprintf("model.layers.%d.", i) }

// ExpectedTensors lists the tensors (name and shape; DType left empty) that
// cfg requires, in a fixed order: embedding, then each layer, then the final
// norm and lm_head. Tensors that may be absent (nemotron norm biases) are in
// OptionalTensors instead.
func ExpectedTensors(cfg *Config) []TensorInfo {
	H, V := cfg.HiddenSize, cfg.VocabSize
	out := []TensorInfo{{Name: "model.embed_tokens.weight", Shape: []int{V, H}}}
	for i := 0; i < cfg.NumLayers; i++ {
		out = append(out, LayerTensors(cfg, i)...)
	}
	out = append(out, TensorInfo{Name: "model.norm.weight", Shape: []int{H}})
	if !cfg.TieWordEmbeddings {
		out = append(out, TensorInfo{Name: "lm_head.weight", Shape: []int{V, H}})
	}
	return out
}

// LayerTensors lists the tensors layer i requires (see ExpectedTensors).
func LayerTensors(cfg *Config, i int) []TensorInfo {
	H, F := cfg.HiddenSize, cfg.IntermediateSize
	q, kv := cfg.QDim(), cfg.KVDim()
	t := func(name string, shape ...int) TensorInfo { return TensorInfo{Name: name, Shape: shape} }
	p := LayerPrefix(i)
	out := []TensorInfo{
		t(p+"input_layernorm.weight", H),
		t(p+"self_attn.q_proj.weight", q, H),
		t(p+"self_attn.k_proj.weight", kv, H),
		t(p+"self_attn.v_proj.weight", kv, H),
		t(p+"self_attn.o_proj.weight", H, q),
	}
	if cfg.QKVBias() {
		out = append(out,
			t(p+"self_attn.q_proj.bias", q),
			t(p+"self_attn.k_proj.bias", kv),
			t(p+"self_attn.v_proj.bias", kv),
		)
	}
	if cfg.OBias() {
		out = append(out, t(p+"self_attn.o_proj.bias", H))
	}
	if cfg.QKNorm() {
		out = append(out, t(p+"self_attn.q_norm.weight", cfg.HeadDim), t(p+"self_attn.k_norm.weight", cfg.HeadDim))
	}
	out = append(out, t(p+"post_attention_layernorm.weight", H))
	if cfg.GatedMLP() {
		out = append(out, t(p+"mlp.gate_proj.weight", F, H))
	}
	out = append(out,
		t(p+"mlp.up_proj.weight", F, H),
		t(p+"mlp.down_proj.weight", H, F),
	)
	if cfg.MLPBias {
		if cfg.GatedMLP() {
			out = append(out, t(p+"mlp.gate_proj.bias", F))
		}
		out = append(out, t(p+"mlp.up_proj.bias", F), t(p+"mlp.down_proj.bias", H))
	}
	return out
}

// expectedCount is len(ExpectedTensors(cfg)), computed without building
// the list.
func expectedCount(cfg *Config) int64 {
	n := int64(2) // embedding, final norm
	if !cfg.TieWordEmbeddings {
		n++
	}
	return n + int64(cfg.NumLayers)*int64(len(LayerTensors(cfg, 0)))
}

// firstMissing is the first tensor of ExpectedTensors(cfg) that src lacks,
// found layer by layer so that at most one layer's names exist at a time.
// It stops within the first len(src.Names())+1 names, since src cannot
// hold more distinct ones.
func firstMissing(cfg *Config, src TensorSource) string {
	has := func(n string) bool { _, ok := src.Info(n); return ok }
	if !has(EmbedTensor) {
		return EmbedTensor
	}
	for i := 0; i < cfg.NumLayers; i++ {
		for _, t := range LayerTensors(cfg, i) {
			if !has(t.Name) {
				return t.Name
			}
		}
	}
	if !has("model.norm.weight") {
		return "model.norm.weight"
	}
	return "lm_head.weight"
}

// OptionalTensors lists tensors cfg allows but does not require: the
// LayerNorm1P biases of nemotron (HF always writes them; NeMo exports may
// not). When present they must be present for every norm.
func OptionalTensors(cfg *Config) []TensorInfo {
	if cfg.Family != Nemotron {
		return nil
	}
	H := cfg.HiddenSize
	var out []TensorInfo
	for i := 0; i < cfg.NumLayers; i++ {
		p := LayerPrefix(i)
		out = append(out,
			TensorInfo{Name: p + "input_layernorm.bias", Shape: []int{H}},
			TensorInfo{Name: p + "post_attention_layernorm.bias", Shape: []int{H}})
	}
	return append(out, TensorInfo{Name: "model.norm.bias", Shape: []int{H}})
}

// harmlessExtra matches buffers that HF exports sometimes carry and that no
// loader needs.
var harmlessExtra = regexp.MustCompile(`(^|\.)rotary_emb\.inv_freq$|\.masked_bias$|\.attn\.bias$`)

// ValidateTensors checks src against cfg: every expected tensor is present
// with the right shape, optional ones are all present or all absent and
// shaped right, and dtypes are known. It returns the names of tensors the
// config does not explain (excluding known-harmless buffers), which callers
// may ignore. Errors name the offending tensor.
func ValidateTensors(cfg *Config, src TensorSource) (unexpected []string, err error) {
	// A config may call for far more tensors than the weights hold (2^24
	// layers pass Validate): compare the counts before listing any name, so
	// refusing it takes memory in proportion to the checkpoint, not to the
	// config's claim.
	if want, held := expectedCount(cfg), int64(len(src.Names())); want > held {
		return nil, fmt.Errorf("missing tensor %q: config.json's num_hidden_layers = %d calls for %d tensors, the weights hold %d",
			firstMissing(cfg, src), cfg.NumLayers, want, held)
	}
	known := map[string]bool{}
	var missing []string
	check := func(want TensorInfo) error {
		known[want.Name] = true
		got, ok := src.Info(want.Name)
		if !ok {
			missing = append(missing, want.Name)
			return nil
		}
		if got.DType.Size() == 0 {
			return fmt.Errorf("tensor %q has unsupported dtype %q", want.Name, got.DType)
		}
		if !slices.Equal(got.Shape, want.Shape) {
			return fmt.Errorf("tensor %q has shape %v, config wants %v", want.Name, got.Shape, want.Shape)
		}
		return nil
	}
	for _, w := range ExpectedTensors(cfg) {
		if err := check(w); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(missing)-1)
		}
		return nil, fmt.Errorf("missing tensor %q%s", missing[0], more)
	}
	opt := OptionalTensors(cfg)
	for _, w := range opt {
		if err := check(w); err != nil {
			return nil, err
		}
	}
	if len(missing) > 0 && len(missing) < len(opt) {
		return nil, fmt.Errorf("missing tensor %q: norm biases must be present for every norm or for none", missing[0])
	}
	for _, n := range src.Names() {
		if !known[n] && !harmlessExtra.MatchString(n) {
			unexpected = append(unexpected, n)
		}
	}
	return unexpected, nil
}
