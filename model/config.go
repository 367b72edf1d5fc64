package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
)

// Family is a supported architecture family (HF model_type).
type Family string

const (
	Nemotron Family = "nemotron"
	Llama    Family = "llama"
	Mistral  Family = "mistral"
	Qwen2    Family = "qwen2"
	Qwen3    Family = "qwen3"
)

// supportedFamilies is the model_type list errors quote.
const supportedFamilies = "nemotron, llama, mistral, qwen2 or qwen3"

// defaultHiddenAct is each family's activation when config.json names none
// (and the one Init writes).
var defaultHiddenAct = map[Family]string{Nemotron: "relu2", Llama: "silu", Mistral: "silu", Qwen2: "silu", Qwen3: "silu"}

// defaultNormEps is each family's config class's norm eps default:
// Qwen2Config/Qwen3Config's rms_norm_eps is 1e-6, the others' 1e-5.
func defaultNormEps(f Family) float64 {
	if f == Qwen2 || f == Qwen3 {
		return 1e-6
	}
	return 1e-5
}

// RopeScaling is HF's rope_scaling block. Type is "linear" or "llama3".
type RopeScaling struct {
	Type                          string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
}

// Config is a decoder's architecture as read from config.json. Fields not
// modelled here are kept in Extra so a read-then-write round-trips.
type Config struct {
	Family                Family
	Architectures         []string
	HiddenSize            int
	IntermediateSize      int
	NumLayers             int
	NumHeads              int
	NumKVHeads            int
	HeadDim               int // resolved: head_dim, else kv_channels, else hidden/heads (qwen3: 128)
	VocabSize             int
	MaxPositionEmbeddings int
	TieWordEmbeddings     bool
	RopeTheta             float64
	PartialRotaryFactor   float64 // nemotron; 1 for the others
	RopeScaling           *RopeScaling
	SlidingWindow         int // 0 = plain causal
	AttentionBias         bool
	MLPBias               bool
	NormEps               float64
	HiddenAct             string
	BOSTokenID            int   // -1 when absent
	EOSTokenIDs           []int // eos_token_id, an int or a list
	TorchDType            string

	// Extra holds every config.json key this struct does not model.
	Extra map[string]json.RawMessage
}

// RotaryDim is how many dims of each head rotate: int(hd·partial_rotary_factor),
// rounded down to even.
func (c *Config) RotaryDim() int {
	r := int(float64(c.HeadDim) * c.PartialRotaryFactor)
	return r &^ 1
}

// QDim is nH·hd, the width of q_proj's output (≠ hidden for Minitron-8B).
func (c *Config) QDim() int { return c.NumHeads * c.HeadDim }

// KVDim is nKV·hd.
func (c *Config) KVDim() int { return c.NumKVHeads * c.HeadDim }

// GatedMLP reports whether the MLP has a gate_proj (SwiGLU: every family
// but nemotron).
func (c *Config) GatedMLP() bool { return c.Family != Nemotron }

// known keys are consumed by the parser; the rest go to Extra.
var knownKeys = map[string]bool{
	"model_type": true, "architectures": true, "hidden_size": true, "intermediate_size": true,
	"num_hidden_layers": true, "num_attention_heads": true, "num_key_value_heads": true,
	"head_dim": true, "kv_channels": true, "vocab_size": true, "max_position_embeddings": true,
	"tie_word_embeddings": true, "rope_theta": true, "partial_rotary_factor": true,
	"rope_percent": true, "rope_scaling": true, "sliding_window": true, "attention_bias": true,
	"mlp_bias": true, "norm_eps": true, "rms_norm_eps": true, "layer_norm_eps": true,
	"hidden_act": true, "bos_token_id": true, "eos_token_id": true, "torch_dtype": true,
}

// LoadConfig reads and validates DIR/config.json or a config.json path.
func LoadConfig(path string) (*Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = path + "/config.json"
	}
	b, err := readRegular(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates config.json bytes.
func ParseConfig(b []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config is not a JSON object: %w", err)
	}
	c := &Config{BOSTokenID: -1, Extra: map[string]json.RawMessage{}}
	for k, v := range raw {
		if !knownKeys[k] {
			c.Extra[k] = v
		}
	}
	var perr error
	get := func(key string, dst any) bool {
		v, ok := raw[key]
		if !ok || string(v) == "null" {
			return false
		}
		if err := json.Unmarshal(v, dst); err != nil && perr == nil {
			perr = fmt.Errorf("field %q: %w", key, err)
		}
		return perr == nil
	}
	var mt string
	if !get("model_type", &mt) {
		if perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("missing model_type (want %s)", supportedFamilies)
	}
	switch Family(mt) {
	case Nemotron, Llama, Mistral, Qwen2, Qwen3:
		c.Family = Family(mt)
	default:
		return nil, fmt.Errorf("unsupported model_type %q (want %s)", mt, supportedFamilies)
	}
	get("architectures", &c.Architectures)
	required := []struct {
		key string
		dst *int
	}{
		{"hidden_size", &c.HiddenSize}, {"intermediate_size", &c.IntermediateSize},
		{"num_hidden_layers", &c.NumLayers}, {"num_attention_heads", &c.NumHeads},
		{"vocab_size", &c.VocabSize},
	}
	for _, r := range required {
		if !get(r.key, r.dst) {
			if perr != nil {
				return nil, perr
			}
			return nil, fmt.Errorf("missing required field %q", r.key)
		}
	}
	c.NumKVHeads = c.NumHeads
	get("num_key_value_heads", &c.NumKVHeads)
	if !get("head_dim", &c.HeadDim) {
		switch {
		case c.Family == Qwen3:
			c.HeadDim = 128 // Qwen3Config's default, whatever hidden/heads is
		case get("kv_channels", &c.HeadDim):
		case c.NumHeads > 0:
			c.HeadDim = c.HiddenSize / c.NumHeads
		}
	}
	c.MaxPositionEmbeddings = 4096
	get("max_position_embeddings", &c.MaxPositionEmbeddings)
	get("tie_word_embeddings", &c.TieWordEmbeddings)
	// transformers v5 writes rope_theta and the scaling into one
	// rope_parameters block (kept raw in Extra); the top-level keys win.
	var ropeParams map[string]json.RawMessage
	if v, ok := raw["rope_parameters"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &ropeParams); err != nil {
			return nil, fmt.Errorf("field \"rope_parameters\": %w", err)
		}
		if _, flat := ropeParams["rope_type"]; !flat {
			if _, flat = ropeParams["rope_theta"]; !flat {
				return nil, fmt.Errorf("field \"rope_parameters\": per-layer-type RoPE parameters are not supported (want rope_type and rope_theta)")
			}
		}
	}
	c.RopeTheta = 10000
	if !get("rope_theta", &c.RopeTheta) && perr == nil {
		if v, ok := ropeParams["rope_theta"]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, &c.RopeTheta); err != nil {
				return nil, fmt.Errorf("field \"rope_parameters\": rope_theta: %w", err)
			}
		}
	}
	c.PartialRotaryFactor = 1
	if c.Family == Nemotron {
		c.PartialRotaryFactor = 0.5
		if !get("partial_rotary_factor", &c.PartialRotaryFactor) {
			get("rope_percent", &c.PartialRotaryFactor)
		}
	}
	scalingKey := "rope_scaling"
	scaling, ok := raw[scalingKey]
	if !ok || string(scaling) == "null" {
		scaling = nil
		if ropeParams != nil {
			scalingKey = "rope_parameters" // rope_type "default" (or none) means no scaling, below
			scaling = raw[scalingKey]
		}
	}
	if v := scaling; v != nil {
		var rs struct {
			RopeType string `json:"rope_type"`
			Type     string `json:"type"`
			RopeScaling
		}
		if err := json.Unmarshal(v, &rs); err != nil {
			return nil, fmt.Errorf("field %q: %w", scalingKey, err)
		}
		s := rs.RopeScaling
		s.Type = rs.RopeType
		if s.Type == "" {
			s.Type = rs.Type
		}
		if s.Type == "" && scalingKey == "rope_parameters" {
			s.Type = "default"
		}
		switch s.Type {
		case "linear", "llama3":
		case "default":
			s = RopeScaling{}
		default:
			return nil, fmt.Errorf("%s: unsupported rope_type %q (want linear or llama3)", scalingKey, s.Type)
		}
		if s.Type != "" {
			c.RopeScaling = &s
		}
	}
	get("sliding_window", &c.SlidingWindow)
	if c.Family == Qwen2 || c.Family == Qwen3 {
		if err := c.qwenSlidingWindow(raw); err != nil {
			return nil, err
		}
	}
	switch c.Family {
	case Qwen2, Qwen3:
		// modeling_qwen2/3's MLP never has biases and qwen2's attention
		// biases are fixed (QKVBias, OBias): keys they ignore are kept raw.
		ignored := []string{"mlp_bias"}
		if c.Family == Qwen2 {
			ignored = append(ignored, "attention_bias")
		} else {
			get("attention_bias", &c.AttentionBias)
		}
		for _, k := range ignored {
			if v, ok := raw[k]; ok {
				c.Extra[k] = v
			}
		}
	default:
		get("attention_bias", &c.AttentionBias)
		get("mlp_bias", &c.MLPBias)
	}
	c.NormEps = defaultNormEps(c.Family)
	for _, k := range []string{"norm_eps", "rms_norm_eps", "layer_norm_eps"} {
		if get(k, &c.NormEps) {
			break
		}
	}
	c.HiddenAct = defaultHiddenAct[c.Family]
	get("hidden_act", &c.HiddenAct)
	get("bos_token_id", &c.BOSTokenID)
	if v, ok := raw["eos_token_id"]; ok && string(v) != "null" {
		var one int
		if err := json.Unmarshal(v, &one); err == nil {
			c.EOSTokenIDs = []int{one}
		} else if err := json.Unmarshal(v, &c.EOSTokenIDs); err != nil {
			return nil, fmt.Errorf("field \"eos_token_id\": want an int or a list of ints")
		}
	}
	get("torch_dtype", &c.TorchDType)
	if perr != nil {
		return nil, perr
	}
	return c, c.Validate()
}

// qwenSlidingWindow resolves a Qwen config's window as transformers'
// Qwen2Config/Qwen3Config do: sliding_window (default 4096; null means none)
// applies only under use_sliding_window, and then to the layers that
// layer_types marks "sliding_attention", or when it is absent to the layers
// from max_window_layers (default 28) on. All layers or none are supported;
// a mix is refused. The raw sliding_window stays in Extra so a round trip
// writes it back unchanged.
func (c *Config) qwenSlidingWindow(raw map[string]json.RawMessage) error {
	window := 4096
	if v, ok := raw["sliding_window"]; ok {
		c.Extra["sliding_window"] = v
		window = c.SlidingWindow // 0 when null
	}
	c.SlidingWindow = 0
	var use bool
	if v, ok := raw["use_sliding_window"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &use); err != nil {
			return fmt.Errorf("field \"use_sliding_window\": %w", err)
		}
	}
	var types []string
	if v, ok := raw["layer_types"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &types); err != nil {
			return fmt.Errorf("field \"layer_types\": %w", err)
		}
		if len(types) != c.NumLayers {
			return fmt.Errorf("field \"layer_types\": %d entries for num_hidden_layers=%d", len(types), c.NumLayers)
		}
		for i, t := range types {
			if t != "full_attention" && t != "sliding_attention" {
				return fmt.Errorf("field \"layer_types\": layer %d is %q (want full_attention or sliding_attention)", i, t)
			}
		}
	}
	maxWindow := 28
	if v, ok := raw["max_window_layers"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &maxWindow); err != nil {
			return fmt.Errorf("field \"max_window_layers\": %w", err)
		}
	}
	if !use || window <= 0 {
		return nil
	}
	sliding := 0
	for i := 0; i < c.NumLayers; i++ {
		if (types == nil && i >= maxWindow) || (types != nil && types[i] == "sliding_attention") {
			sliding++
		}
	}
	switch {
	case sliding == 0:
		return nil
	case sliding == c.NumLayers:
		c.SlidingWindow = window
		return nil
	case types != nil:
		return fmt.Errorf("use_sliding_window with layer_types mixing %d sliding and %d full layers: per-layer sliding windows are not supported (all layers or none)",
			sliding, c.NumLayers-sliding)
	}
	return fmt.Errorf("use_sliding_window with max_window_layers=%d < num_hidden_layers=%d: per-layer sliding windows are not supported (all layers or none)",
		maxWindow, c.NumLayers)
}

// marshalQwenWindow writes a Qwen config's window keys so that they say
// what SlidingWindow says at the current layer count: the raw
// sliding_window and max_window_layers stay as read when no layer slides,
// and layer_types, when the config has it, lists NumLayers entries (a
// depth-pruned student has fewer layers than the list it was read with).
func (c *Config) marshalQwenWindow(m map[string]any) {
	m["use_sliding_window"] = c.SlidingWindow > 0
	kind := "full_attention"
	if c.SlidingWindow > 0 {
		m["sliding_window"] = c.SlidingWindow
		m["max_window_layers"] = 0
		kind = "sliding_attention"
	}
	if _, ok := c.Extra["layer_types"]; ok {
		types := make([]string, c.NumLayers)
		for i := range types {
			types[i] = kind
		}
		m["layer_types"] = types
	}
}

// QKVBias reports biases on q_proj, k_proj and v_proj: always for qwen2,
// else under attention_bias.
func (c *Config) QKVBias() bool { return c.Family == Qwen2 || c.AttentionBias }

// OBias reports a bias on o_proj: attention_bias, except in qwen2, whose
// o_proj never has one.
func (c *Config) OBias() bool { return c.Family != Qwen2 && c.AttentionBias }

// QKNorm reports qwen3's RMSNorm over head_dim on every query and key head
// before RoPE (q_norm, k_norm).
func (c *Config) QKNorm() bool { return c.Family == Qwen3 }

// Validate checks that the dimensions are positive and consistent.
func (c *Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumLayers}, {"num_attention_heads", c.NumHeads},
		{"num_key_value_heads", c.NumKVHeads}, {"head_dim", c.HeadDim}, {"vocab_size", c.VocabSize},
	}
	for _, p := range pos {
		if p.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", p.name, p.v)
		}
		if p.v > 1<<24 {
			return fmt.Errorf("%s = %d is implausibly large", p.name, p.v)
		}
	}
	// max_position_embeddings sizes RoPE tables and KV caches and bounds
	// every sequence the forward pass runs, so it gets the same cap.
	if c.MaxPositionEmbeddings <= 0 {
		return fmt.Errorf("max_position_embeddings must be positive, got %d", c.MaxPositionEmbeddings)
	}
	if c.MaxPositionEmbeddings > 1<<24 {
		return fmt.Errorf("max_position_embeddings = %d is implausibly large", c.MaxPositionEmbeddings)
	}
	// Each size under the cap can still multiply into a matrix no machine
	// holds (and whose byte size overflows): bound the largest weights.
	mats := []struct {
		name string
		r, c int
	}{
		{"embedding [vocab_size, hidden_size]", c.VocabSize, c.HiddenSize},
		{"q_proj [num_attention_heads·head_dim, hidden_size]", c.NumHeads * c.HeadDim, c.HiddenSize},
		{"k_proj [num_key_value_heads·head_dim, hidden_size]", c.NumKVHeads * c.HeadDim, c.HiddenSize},
		{"up_proj [intermediate_size, hidden_size]", c.IntermediateSize, c.HiddenSize},
	}
	for _, m := range mats {
		if n := int64(m.r) * int64(m.c); n > maxMatrixElements {
			return fmt.Errorf("the %s weight would have %d elements (more than %d): the sizes are implausible together", m.name, n, int64(maxMatrixElements))
		}
	}
	if c.BOSTokenID != -1 && (c.BOSTokenID < 0 || c.BOSTokenID >= c.VocabSize) {
		return fmt.Errorf("bos_token_id %d is outside the vocabulary [0,%d)", c.BOSTokenID, c.VocabSize)
	}
	if err := CheckEOS(c.EOSTokenIDs, c.VocabSize); err != nil {
		return err
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("head_dim %d must be even for RoPE", c.HeadDim)
	}
	if !(c.PartialRotaryFactor > 0 && c.PartialRotaryFactor <= 1) {
		return fmt.Errorf("partial_rotary_factor must be in (0,1], got %v", c.PartialRotaryFactor)
	}
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return fmt.Errorf("rope_theta must be positive, got %v", c.RopeTheta)
	}
	if !(c.NormEps > 0) || c.NormEps > 1 {
		return fmt.Errorf("norm eps must be in (0,1], got %v", c.NormEps)
	}
	if c.SlidingWindow < 0 {
		return fmt.Errorf("sliding_window must be positive or null, got %d", c.SlidingWindow)
	}
	if rs := c.RopeScaling; rs != nil {
		if !(rs.Factor >= 1) || math.IsInf(rs.Factor, 0) {
			return fmt.Errorf("rope_scaling.factor must be >= 1, got %v", rs.Factor)
		}
		if rs.Type == "llama3" {
			if !(rs.LowFreqFactor > 0 && rs.HighFreqFactor > rs.LowFreqFactor) || rs.OriginalMaxPositionEmbeddings <= 0 {
				return fmt.Errorf("rope_scaling llama3 needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
			}
		}
	}
	switch c.HiddenAct {
	case "relu2", "silu", "gelu", "gelu_pytorch_tanh", "relu":
	default:
		return fmt.Errorf("unsupported hidden_act %q", c.HiddenAct)
	}
	return nil
}

// CheckPositions reports a run of n positions after start that goes past
// max_position_embeddings: RoPE was never trained there, and a caller's
// length (a KV cache, a sequence) must not size memory beyond it.
func (c *Config) CheckPositions(start, n int) error {
	if start+n > c.MaxPositionEmbeddings {
		if start > 0 {
			return fmt.Errorf("%d positions (%d cached + %d new) exceed MaxPositionEmbeddings %d (config.json max_position_embeddings)",
				start+n, start, n, c.MaxPositionEmbeddings)
		}
		return fmt.Errorf("%d positions exceed MaxPositionEmbeddings %d (config.json max_position_embeddings)", n, c.MaxPositionEmbeddings)
	}
	return nil
}

// maxMatrixElements bounds one weight matrix: 2^36 elements (256 GiB in
// f32) is far above any released model's largest (Llama-3.1-405B's
// embedding is 2^31) and keeps every byte size well inside int64.
const maxMatrixElements = 1 << 36

// CheckEOS reports an end-of-sequence id outside [0, vocab): generation
// could never emit it and would run to its length limit.
func CheckEOS(ids []int, vocab int) error {
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return fmt.Errorf("eos_token_id %d is outside the vocabulary [0,%d)", id, vocab)
		}
	}
	return nil
}

// MarshalJSON writes HF config.json keys, with head_dim always explicit,
// followed by the preserved Extra keys.
func (c *Config) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range c.Extra {
		m[k] = v
	}
	m["model_type"] = string(c.Family)
	if len(c.Architectures) > 0 {
		m["architectures"] = c.Architectures
	}
	m["hidden_size"] = c.HiddenSize
	m["intermediate_size"] = c.IntermediateSize
	m["num_hidden_layers"] = c.NumLayers
	m["num_attention_heads"] = c.NumHeads
	m["num_key_value_heads"] = c.NumKVHeads
	m["head_dim"] = c.HeadDim
	if c.Family == Nemotron {
		m["kv_channels"] = c.HeadDim
		m["partial_rotary_factor"] = c.PartialRotaryFactor
		m["norm_eps"] = c.NormEps
	} else {
		m["rms_norm_eps"] = c.NormEps
	}
	m["vocab_size"] = c.VocabSize
	m["max_position_embeddings"] = c.MaxPositionEmbeddings
	m["tie_word_embeddings"] = c.TieWordEmbeddings
	m["rope_theta"] = c.RopeTheta
	if c.RopeScaling != nil {
		m["rope_scaling"] = c.RopeScaling
	}
	if c.Family == Qwen2 || c.Family == Qwen3 {
		c.marshalQwenWindow(m)
	} else if c.SlidingWindow > 0 {
		m["sliding_window"] = c.SlidingWindow
	} else if c.Family == Mistral {
		m["sliding_window"] = nil
	}
	if c.Family != Qwen2 {
		m["attention_bias"] = c.AttentionBias
	}
	if c.Family != Qwen2 && c.Family != Qwen3 {
		m["mlp_bias"] = c.MLPBias
	}
	m["hidden_act"] = c.HiddenAct
	if c.BOSTokenID >= 0 {
		m["bos_token_id"] = c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		m["eos_token_id"] = c.EOSTokenIDs
	}
	if c.TorchDType != "" {
		m["torch_dtype"] = c.TorchDType
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteString("{\n")
	for i, k := range keys {
		v, err := json.Marshal(m[k])
		if err != nil {
			return nil, err
		}
		kb, _ := json.Marshal(k)
		fmt.Fprintf(&buf, "  %s: %s", kb, v)
		if i < len(keys)-1 {
			buf.WriteString(",")
		}
		buf.WriteString("\n")
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}
