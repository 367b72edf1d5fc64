package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/minitron-dev/minitron/model/kernels"
)

// WeightMode says where a Model keeps its weights.
type WeightMode int

const (
	// WeightsAuto keeps converted f32 weights resident when they fit in
	// Options.MaxResidentBytes (default: half of the available memory) and
	// streams otherwise.
	WeightsAuto WeightMode = iota
	// WeightsResident converts every weight to f32 once, at New (fast).
	WeightsResident
	// WeightsStreaming leaves weights in the source (memory-mapped, stored
	// dtype) and converts one layer at a time into a reused f32 buffer
	// during each forward pass, so checkpoints larger than RAM run. Mapped
	// pages of a layer are dropped from the process (madvise DONTNEED) once
	// converted, which keeps resident memory near one layer's f32 weights.
	WeightsStreaming
)

func (w WeightMode) String() string {
	return [...]string{"auto", "resident", "streaming"}[w]
}

// ParseWeightMode accepts auto, resident and streaming.
func ParseWeightMode(s string) (WeightMode, error) {
	switch s {
	case "", "auto":
		return WeightsAuto, nil
	case "resident":
		return WeightsResident, nil
	case "streaming", "stream":
		return WeightsStreaming, nil
	}
	return 0, fmt.Errorf("unknown weight mode %q (want auto, resident or streaming)", s)
}

// Options configures New and Load.
type Options struct {
	Weights WeightMode
	// MaxResidentBytes is WeightsAuto's budget for f32 weights; 0 means half
	// of MemAvailable (or 8 GiB when that is unknown).
	MaxResidentBytes int64
}

// Model is a decoder ready to run: its config, its weights (resident f32 or
// streamed from a TensorSource) and RoPE tables. Forward passes on a
// resident model may run concurrently; a streaming model serialises them.
type Model struct {
	Cfg *Config
	// EOS holds the end-of-sequence ids generation stops on: the
	// checkpoint's generation_config.json eos_token_id when present, else
	// config.json's.
	EOS []int

	src      TensorSource
	closer   io.Closer
	resident bool
	act      kernels.Activation
	normBias bool
	arch     *Arch

	// resident weights (nil when streaming)
	embed  []float32 // [V,H]
	head   []float32 // [V,H]; aliases embed when tied
	normW  []float32
	normB  []float32
	layers []*layerWeights

	streamMu  sync.Mutex    // a streaming model has one layer buffer
	streamBuf *layerWeights // reused per layer while streaming
	headBuf   []float32     // reused slice of the head while streaming

	ropeMu   sync.Mutex
	cos, sin []float32 // [ropeLen, rot/2]
	ropeLen  int
}

// layerWeights are one decoder layer's weights in f32, with q/k/v fused into
// one [qd+2kvd, H] matrix so the projection is a single product.
type layerWeights struct {
	attnNormW, attnNormB []float32
	qkv, qkvBias         []float32
	o, oBias             []float32
	qNorm, kNorm         []float32 // qwen3: [head_dim] RMSNorm weights of every q and k head
	mlpNormW, mlpNormB   []float32
	gate, gateBias       []float32 // gated (SwiGLU) MLPs only
	up, upBias           []float32
	down, downBias       []float32
}

// Load opens the checkpoint directory dir and builds a Model over it. The
// checkpoint stays open (memory-mapped) until Close.
func Load(dir string, opt Options) (*Model, error) {
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	m, err := New(ck.Config(), ck, opt)
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m.closer = ck
	eos, err := ReadGenerationEOS(dir)
	if err != nil {
		ck.Close()
		return nil, err
	}
	if err := CheckEOS(eos, m.Cfg.VocabSize); err != nil {
		ck.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "generation_config.json"), err)
	}
	if eos != nil {
		m.EOS = eos
	}
	return m, nil
}

// ReadGenerationEOS returns eos_token_id (an int or a list) from
// dir/generation_config.json, nil when the file or the key is absent.
func ReadGenerationEOS(dir string) ([]int, error) {
	p := filepath.Join(dir, "generation_config.json")
	b, err := readRegular(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var gc map[string]json.RawMessage
	if err := json.Unmarshal(b, &gc); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", p, err)
	}
	v, ok := gc["eos_token_id"]
	if !ok || string(v) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(v, &one) == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%s: eos_token_id must be an int or a list of ints", p)
	}
	return list, nil
}

// New builds a Model from cfg and src. It checks that src holds every tensor
// cfg calls for with the right shape.
func New(cfg *Config, src TensorSource, opt Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := ValidateTensors(cfg, src); err != nil {
		return nil, err
	}
	arch, err := NewArch(cfg, src)
	if err != nil {
		return nil, err
	}
	m := &Model{Cfg: cfg, EOS: append([]int(nil), cfg.EOSTokenIDs...), src: src, arch: arch, act: arch.Act, normBias: arch.NormBias}
	switch opt.Weights {
	case WeightsResident:
		m.resident = true
	case WeightsStreaming:
	default:
		budget := opt.MaxResidentBytes
		if budget <= 0 {
			budget = availableMemory() / 2
		}
		m.resident = F32WeightBytes(cfg) <= budget
	}
	if m.resident {
		if err := m.loadResident(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// F32WeightBytes is the size of cfg's weights converted to float32.
func F32WeightBytes(cfg *Config) int64 {
	var n int64
	for _, t := range ExpectedTensors(cfg) {
		n += int64(t.NumElements())
	}
	return 4 * n
}

// availableMemory reads MemAvailable from /proc/meminfo (8 GiB if unknown).
func availableMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 8 << 30
}

// Resident reports whether the weights are held as f32 in memory.
func (m *Model) Resident() bool { return m.resident }

// Source is the TensorSource the model reads (its weights, in their stored
// dtype).
func (m *Model) Source() TensorSource { return m.src }

// Close releases the checkpoint Load opened (a no-op for New).
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

func (m *Model) readTensor(name string) ([]float32, error) {
	info, ok := m.src.Info(name)
	if !ok {
		return nil, fmt.Errorf("missing tensor %q", name)
	}
	buf := make([]float32, info.NumElements())
	if err := m.src.ReadF32(name, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func (m *Model) loadResident() error {
	var err error
	if m.embed, err = m.readTensor("model.embed_tokens.weight"); err != nil {
		return err
	}
	if m.Cfg.TieWordEmbeddings {
		m.head = m.embed
	} else if m.head, err = m.readTensor("lm_head.weight"); err != nil {
		return err
	}
	if m.normW, err = m.readTensor("model.norm.weight"); err != nil {
		return err
	}
	if m.normBias {
		if m.normB, err = m.readTensor("model.norm.bias"); err != nil {
			return err
		}
	}
	m.layers = make([]*layerWeights, m.Cfg.NumLayers)
	for i := range m.layers {
		m.layers[i] = m.newLayerBuf()
		if err := m.readLayer(i, m.layers[i]); err != nil {
			return err
		}
	}
	// Everything is converted: the mapped file pages are no longer needed
	// in this process (they stay in the page cache).
	for _, n := range m.src.Names() {
		releaseMapped(m.src, n)
	}
	return nil
}

// newLayerBuf allocates one layer's f32 weights.
func (m *Model) newLayerBuf() *layerWeights {
	c := m.Cfg
	H, F, q, kv := c.HiddenSize, c.IntermediateSize, c.QDim(), c.KVDim()
	lw := &layerWeights{
		attnNormW: make([]float32, H),
		qkv:       make([]float32, (q+2*kv)*H),
		o:         make([]float32, H*q),
		mlpNormW:  make([]float32, H),
		up:        make([]float32, F*H),
		down:      make([]float32, H*F),
	}
	if m.normBias {
		lw.attnNormB, lw.mlpNormB = make([]float32, H), make([]float32, H)
	}
	if c.QKVBias() {
		lw.qkvBias = make([]float32, q+2*kv)
	}
	if c.OBias() {
		lw.oBias = make([]float32, H)
	}
	if c.QKNorm() {
		lw.qNorm, lw.kNorm = make([]float32, c.HeadDim), make([]float32, c.HeadDim)
	}
	if c.GatedMLP() {
		lw.gate = make([]float32, F*H)
	}
	if c.MLPBias {
		lw.upBias, lw.downBias = make([]float32, F), make([]float32, H)
		if c.GatedMLP() {
			lw.gateBias = make([]float32, F)
		}
	}
	return lw
}

// readLayer converts layer i's tensors into lw. In streaming mode the
// source's mapped pages are released after conversion.
func (m *Model) readLayer(i int, lw *layerWeights) error {
	c := m.Cfg
	H, q, kv := c.HiddenSize, c.QDim(), c.KVDim()
	p := LayerPrefix(i)
	type part struct {
		name string
		dst  []float32
	}
	parts := []part{
		{p + "input_layernorm.weight", lw.attnNormW},
		{p + "self_attn.q_proj.weight", lw.qkv[:q*H]},
		{p + "self_attn.k_proj.weight", lw.qkv[q*H : (q+kv)*H]},
		{p + "self_attn.v_proj.weight", lw.qkv[(q+kv)*H:]},
		{p + "self_attn.o_proj.weight", lw.o},
		{p + "post_attention_layernorm.weight", lw.mlpNormW},
		{p + "mlp.up_proj.weight", lw.up},
		{p + "mlp.down_proj.weight", lw.down},
	}
	if m.normBias {
		parts = append(parts, part{p + "input_layernorm.bias", lw.attnNormB}, part{p + "post_attention_layernorm.bias", lw.mlpNormB})
	}
	if c.QKVBias() {
		parts = append(parts,
			part{p + "self_attn.q_proj.bias", lw.qkvBias[:q]},
			part{p + "self_attn.k_proj.bias", lw.qkvBias[q : q+kv]},
			part{p + "self_attn.v_proj.bias", lw.qkvBias[q+kv:]})
	}
	if c.OBias() {
		parts = append(parts, part{p + "self_attn.o_proj.bias", lw.oBias})
	}
	if c.QKNorm() {
		parts = append(parts, part{p + "self_attn.q_norm.weight", lw.qNorm}, part{p + "self_attn.k_norm.weight", lw.kNorm})
	}
	if c.GatedMLP() {
		parts = append(parts, part{p + "mlp.gate_proj.weight", lw.gate})
	}
	if c.MLPBias {
		parts = append(parts, part{p + "mlp.up_proj.bias", lw.upBias}, part{p + "mlp.down_proj.bias", lw.downBias})
		if c.GatedMLP() {
			parts = append(parts, part{p + "mlp.gate_proj.bias", lw.gateBias})
		}
	}
	for _, pt := range parts {
		if err := m.src.ReadF32(pt.name, pt.dst); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		if !m.resident {
			releaseMapped(m.src, pt.name)
		}
	}
	return nil
}

// releaseMapped drops a converted tensor's mapped pages from the process
// (Releaser.Release: madvise DONTNEED on the read-only mapping; the page
// cache keeps them). Streaming calls it after converting each tensor, so
// resident memory stays near one layer's f32 weights instead of growing to
// the whole file.
func releaseMapped(src TensorSource, name string) {
	if r, ok := src.(Releaser); ok {
		r.Release(name)
	}
}

// prefetchLayer asks the source to start paging layer i in (Releaser.
// Prefetch, madvise WILLNEED), so disk reads overlap the current layer's
// compute when the checkpoint is not in the page cache.
func (m *Model) prefetchLayer(i int) {
	r, ok := m.src.(Releaser)
	if !ok || i >= m.Cfg.NumLayers {
		return
	}
	p := LayerPrefix(i)
	for _, n := range []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
		"self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"} {
		r.Prefetch(p + n)
	}
}

// Arch is the architecture the model was built with.
func (m *Model) Arch() *Arch { return m.arch }

// ropeTables returns cos/sin tables covering positions [0, n).
func (m *Model) ropeTables(n int) (cos, sin []float32) {
	m.ropeMu.Lock()
	defer m.ropeMu.Unlock()
	if n > m.ropeLen {
		l := max(256, m.ropeLen)
		for l < n {
			l *= 2
		}
		m.cos, m.sin = m.arch.RopeTables(l)
		m.ropeLen = l
	}
	return m.cos, m.sin
}
