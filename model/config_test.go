package model

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// semEqual compares two JSON documents by value.
func semEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func normalizeExtra(c *Config) {
	for k, v := range c.Extra {
		var buf bytes.Buffer
		json.Compact(&buf, v)
		c.Extra[k] = buf.Bytes()
	}
}

const llama3Config = `{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 3,
  "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 128256,
  "max_position_embeddings": 8192, "rope_theta": 500000.0,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
  "rms_norm_eps": 1e-05, "tie_word_embeddings": true, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
  "torch_dtype": "bfloat16", "transformers_version": "4.44.0", "pretraining_tp": 1, "initializer_range": 0.02,
  "custom_block": {"nested": [1, 2, {"x": null}]}
}`

const minitron8BConfig = `{
  "architectures": ["NemotronForCausalLM"], "model_type": "nemotron",
  "hidden_size": 4096, "intermediate_size": 16384, "num_hidden_layers": 32,
  "num_attention_heads": 48, "num_key_value_heads": 8, "kv_channels": 128,
  "vocab_size": 256000, "max_position_embeddings": 4096, "norm_eps": 1e-05,
  "rope_theta": 10000, "rope_percent": 0.5, "hidden_act": "relu2",
  "tie_word_embeddings": false, "bos_token_id": 2, "eos_token_id": 3, "torch_dtype": "bfloat16"
}`

const mistralConfig = `{
  "model_type": "mistral", "hidden_size": 128, "intermediate_size": 320, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 500,
  "sliding_window": 4096, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
  "rope_scaling": {"type": "linear", "factor": 2.0}
}`

// qwen25_7BConfig is Qwen2.5-7B's config.json (a sliding_window that
// use_sliding_window=false turns off).
const qwen25_7BConfig = `{
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
  "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02, "intermediate_size": 18944,
  "max_position_embeddings": 131072, "max_window_layers": 28, "model_type": "qwen2", "num_attention_heads": 28,
  "num_hidden_layers": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
  "use_cache": true, "use_mrope": false, "use_sliding_window": false, "vocab_size": 152064
}`

// qwen3_8BConfig is Qwen3-8B's config.json.
const qwen3_8BConfig = `{
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
  "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936
}`

func TestConfigRoundTrip(t *testing.T) {
	inputs := map[string]string{"llama3": llama3Config, "minitron-8b": minitron8BConfig, "mistral": mistralConfig,
		"qwen2.5-7b": qwen25_7BConfig, "qwen3-8b": qwen3_8BConfig}
	for _, g := range goldenCases {
		b, err := os.ReadFile(filepath.Join(goldenDir(g), ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		inputs[g] = string(b)
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			c1, err := ParseConfig([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			out, err := c1.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseConfig(out)
			if err != nil {
				t.Fatalf("re-parse of our own output: %v\n%s", err, out)
			}
			normalizeExtra(c1)
			normalizeExtra(c2)
			if !reflect.DeepEqual(c1, c2) {
				t.Fatalf("round trip changed the config:\n%+v\n%+v\n%s", c1, c2, out)
			}
			// Every key we do not model comes back unchanged.
			var raw map[string]json.RawMessage
			json.Unmarshal([]byte(in), &raw)
			var rawOut map[string]json.RawMessage
			json.Unmarshal(out, &rawOut)
			for k, v := range raw {
				if knownKeys[k] {
					continue
				}
				if !semEqual(v, rawOut[k]) {
					t.Errorf("extra key %q: %s became %s", k, v, rawOut[k])
				}
			}
		})
	}
}

func TestConfigParsedValues(t *testing.T) {
	c, err := ParseConfig([]byte(minitron8BConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadDim != 128 || c.QDim() != 6144 || c.KVDim() != 1024 {
		t.Errorf("Minitron-8B head_dim from kv_channels: hd=%d q=%d kv=%d, want 128/6144/1024", c.HeadDim, c.QDim(), c.KVDim())
	}
	if c.PartialRotaryFactor != 0.5 || c.RotaryDim() != 64 {
		t.Errorf("rope_percent 0.5 → rotary dim %d (factor %v), want 64", c.RotaryDim(), c.PartialRotaryFactor)
	}
	l, err := ParseConfig([]byte(llama3Config))
	if err != nil {
		t.Fatal(err)
	}
	if l.RopeScaling == nil || l.RopeScaling.Type != "llama3" || l.RopeScaling.OriginalMaxPositionEmbeddings != 8192 {
		t.Errorf("llama3 rope_scaling %+v", l.RopeScaling)
	}
	if !reflect.DeepEqual(l.EOSTokenIDs, []int{128001, 128008, 128009}) || !l.TieWordEmbeddings || l.HeadDim != 32 {
		t.Errorf("llama3: eos %v tied %v hd %d", l.EOSTokenIDs, l.TieWordEmbeddings, l.HeadDim)
	}
	m, err := ParseConfig([]byte(mistralConfig))
	if err != nil {
		t.Fatal(err)
	}
	if m.HeadDim != 64 || m.QDim() != 256 || m.SlidingWindow != 4096 || m.RopeScaling.Type != "linear" || m.NormEps != 1e-6 {
		t.Errorf("mistral: %+v", m)
	}
}

func TestConfigErrors(t *testing.T) {
	base := func(over string) string {
		// A valid llama config with keys replaced or added by over (a JSON
		// object; null values delete the key).
		var m map[string]any
		json.Unmarshal([]byte(`{"model_type":"llama","hidden_size":64,"intermediate_size":128,
			"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100}`), &m)
		var o map[string]any
		if err := json.Unmarshal([]byte(over), &o); err != nil {
			panic(err)
		}
		for k, v := range o {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct {
		name   string
		in     string
		want   string
		reason string
	}{
		{"not json", `{"model_type": llama}`, "config is not a JSON object", "syntax error"},
		{"json list", `[1,2]`, "config is not a JSON object", "top level must be an object"},
		{"unknown model_type", base(`{"model_type":"gpt2"}`), `unsupported model_type "gpt2" (want nemotron, llama, mistral, qwen2 or qwen3)`, "five families"},
		{"missing model_type", base(`{"model_type":null}`), "missing model_type", "family decides the math"},
		{"missing hidden_size", base(`{"hidden_size":null}`), `missing required field "hidden_size"`, "no default for dims"},
		{"missing vocab", base(`{"vocab_size":null}`), `missing required field "vocab_size"`, "no default for dims"},
		{"wrong type int", base(`{"hidden_size":"64"}`), `field "hidden_size"`, "string where int expected"},
		{"wrong type optional", base(`{"tie_word_embeddings":"yes"}`), `field "tie_word_embeddings"`, "optional fields are type-checked too"},
		{"wrong type model_type", base(`{"model_type":7}`), `field "model_type"`, "number for a string"},
		{"heads not divisible", base(`{"num_key_value_heads":3}`), "num_attention_heads (4) is not a multiple of num_key_value_heads (3)", "GQA groups must be equal"},
		{"zero heads", base(`{"num_attention_heads":0}`), "num_attention_heads must be positive", "division by zero guard"},
		{"negative layers", base(`{"num_hidden_layers":-1}`), "num_hidden_layers must be positive", "negative dims"},
		{"huge vocab", base(`{"vocab_size":100000000}`), "vocab_size = 100000000 is implausibly large", "corrupt sizes"},
		{"odd head_dim", base(`{"head_dim":15}`), "head_dim 15 must be even", "RoPE rotates pairs"},
		{"bad rope type", base(`{"rope_scaling":{"rope_type":"yarn","factor":4}}`), `rope_scaling: unsupported rope_type "yarn"`, "unsupported scaling"},
		{"bad rope factor", base(`{"rope_scaling":{"rope_type":"linear","factor":0.5}}`), "rope_scaling.factor must be >= 1", "factor < 1 would compress positions"},
		{"llama3 missing fields", base(`{"rope_scaling":{"rope_type":"llama3","factor":8}}`), "rope_scaling llama3 needs", "llama3 needs its frequency band"},
		{"rope_scaling wrong type", base(`{"rope_scaling":"linear"}`), `field "rope_scaling"`, "must be an object"},
		{"bad eos", base(`{"eos_token_id":"</s>"}`), "eos_token_id", "an int or a list"},
		{"bad act", base(`{"hidden_act":"swish2"}`), `unsupported hidden_act "swish2"`, "unknown activation"},
		{"bad eps", base(`{"rms_norm_eps":0}`), "norm eps must be in (0,1]", "eps 0 divides by zero on zero input"},
		{"bad partial rotary", `{"model_type":"nemotron","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"partial_rotary_factor":1.5}`,
			"partial_rotary_factor must be in (0,1]", "cannot rotate more than the head"},
		{"negative window", base(`{"sliding_window":-4}`), "sliding_window must be positive or null", "negative window"},
		{"bad theta", base(`{"rope_theta":-1}`), "rope_theta must be positive", "negative base"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(c.in))
			if err == nil {
				t.Fatalf("accepted %s; want error containing %q (%s)", c.in, c.want, c.reason)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q should contain %q (%s)", err, c.want, c.reason)
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"model_type":"llama"}`), 0o644)
	_, err := LoadConfig(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ConfigFile)) || !strings.Contains(err.Error(), "hidden_size") {
		t.Fatalf("got %v", err)
	}
	if _, err := LoadConfig(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("missing file must fail")
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{llama3Config, minitron8BConfig, mistralConfig, qwen25_7BConfig, qwen3_8BConfig, `{}`, `[]`, `{"model_type":"nemotron"}`,
		`{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,"num_hidden_layers":4,"num_attention_heads":4,"vocab_size":100,"use_sliding_window":true,"sliding_window":8,"max_window_layers":0}`,
		`{"model_type":"qwen3","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"rope_parameters":{"rope_theta":1000000,"rope_type":"default"}}`,
		`{"model_type":"qwen3","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"attention_bias":true,"use_sliding_window":true,"layer_types":["sliding_attention","sliding_attention"]}`,
		`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"eos_token_id":[1,2],"bos_token_id":-3}`} {
		f.Add([]byte(s))
	}
	for _, g := range goldenCases {
		if b, err := os.ReadFile(filepath.Join(goldenDir(g), ConfigFile)); err == nil {
			f.Add(b)
		}
	}
	for _, g := range caseDirs {
		if b, err := os.ReadFile(filepath.Join(caseDir(g), ConfigFile)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		// Anything accepted must write out, read back, and write out the
		// same again; and the derived sizes must not panic.
		out, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal of accepted config: %v", err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("our output does not re-parse: %v\n%s", err, out)
		}
		out2, _ := c2.MarshalJSON()
		if !bytes.Equal(out, out2) {
			t.Fatalf("marshal not stable:\n%s\n%s", out, out2)
		}
		// The derived architecture (biases, q/k norms, window, head_dim,
		// eps) survives the round trip, and a copy with fewer layers (a
		// depth-pruned student) keeps its window.
		if c2.QKVBias() != c.QKVBias() || c2.OBias() != c.OBias() || c2.QKNorm() != c.QKNorm() ||
			c2.SlidingWindow != c.SlidingWindow || c2.HeadDim != c.HeadDim || c2.NormEps != c.NormEps {
			t.Fatalf("round trip changed the architecture:\n%s", out)
		}
		if c.NumLayers > 1 {
			short := *c
			short.NumLayers = c.NumLayers - 1
			sb, err := short.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if c3, err := ParseConfig(sb); err != nil || c3.SlidingWindow != c.SlidingWindow {
				t.Fatalf("one layer fewer: %v\n%s", err, sb)
			}
		}
		_ = c.ParamCounts()
		_ = c.RotaryDim()
	})
}

// transformers v5 writes rope_parameters instead of rope_theta and
// rope_scaling: its theta and scaling are read (not the 10000 default).
func TestRopeParameters(t *testing.T) {
	const base = `"model_type":"qwen3","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	cases := []struct {
		in      string
		theta   float64
		scaling string
		err     string
		reason  string
	}{
		{`{` + base + `,"rope_parameters":{"rope_theta":1000000,"rope_type":"default"}}`, 1e6, "", "", "v5's default block: theta from it, no scaling"},
		{`{` + base + `,"rope_parameters":{"rope_theta":500000}}`, 5e5, "", "", "no rope_type means default"},
		{`{` + base + `,"rope_parameters":{"rope_theta":500000,"rope_type":"linear","factor":2}}`, 5e5, "linear", "", "scaling given in rope_parameters"},
		{`{` + base + `,"rope_theta":20000,"rope_parameters":{"rope_theta":1000000,"rope_type":"default"}}`, 2e4, "", "", "a top-level rope_theta wins"},
		{`{` + base + `,"rope_parameters":{"rope_theta":1000000,"rope_type":"yarn","factor":4}}`, 0, "", `rope_parameters: unsupported rope_type "yarn"`, "an unsupported type names the field"},
		{`{` + base + `,"rope_parameters":{"full_attention":{"rope_theta":1e6},"sliding_attention":{"rope_theta":1e4}}}`, 0, "", "per-layer-type RoPE parameters are not supported", "per-layer-type blocks are refused"},
		{`{` + base + `,"rope_parameters":[1]}`, 0, "", `field "rope_parameters"`, "not an object"},
	}
	for _, tc := range cases {
		c, err := ParseConfig([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.reason, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.reason, err)
			continue
		}
		got := ""
		if c.RopeScaling != nil {
			got = c.RopeScaling.Type
		}
		if c.RopeTheta != tc.theta || got != tc.scaling {
			t.Errorf("%s: theta %v scaling %q, want %v %q", tc.reason, c.RopeTheta, got, tc.theta, tc.scaling)
		}
	}
}

func TestQwenConfig(t *testing.T) {
	const base = `"hidden_size":64,"intermediate_size":128,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100`
	cases := []struct {
		name                   string
		in                     string
		window                 int
		qkvBias, oBias, qkNorm bool
		headDim                int
		err                    string
		reason                 string
	}{
		{"qwen2", `{"model_type":"qwen2",` + base + `,"sliding_window":32768,"use_sliding_window":false}`, 0, true, false, false, 16, "",
			"q/k/v biases always, none on o_proj; the window is off without use_sliding_window"},
		{"qwen2 all sliding", `{"model_type":"qwen2",` + base + `,"sliding_window":8,"use_sliding_window":true,"max_window_layers":0}`, 8, true, false, false, 16, "",
			"max_window_layers 0: every layer slides"},
		{"qwen2 none sliding", `{"model_type":"qwen2",` + base + `,"sliding_window":8,"use_sliding_window":true,"max_window_layers":4}`, 0, true, false, false, 16, "",
			"max_window_layers ≥ layers: no layer slides"},
		{"qwen2 mixed sliding", `{"model_type":"qwen2",` + base + `,"sliding_window":8,"use_sliding_window":true,"max_window_layers":2}`, 0, false, false, false, 0,
			"per-layer sliding windows are not supported", "half the layers slide: refused, not silently wrong"},
		{"qwen3", `{"model_type":"qwen3",` + base + `,"head_dim":32,"attention_bias":false}`, 0, false, false, true, 32, "",
			"explicit head_dim ≠ hidden/heads; q/k norms; no biases"},
		{"qwen3 biased", `{"model_type":"qwen3",` + base + `,"attention_bias":true}`, 0, true, true, true, 128, "",
			"attention_bias puts biases on q, k, v and o; without head_dim, Qwen3Config's default 128 (not hidden/heads 16)"},
		{"qwen2 default window", `{"model_type":"qwen2",` + base + `,"use_sliding_window":true,"max_window_layers":0}`, 4096, true, false, false, 16, "",
			"an absent sliding_window is Qwen2Config's default 4096"},
		{"qwen2 null window", `{"model_type":"qwen2",` + base + `,"sliding_window":null,"use_sliding_window":true,"max_window_layers":0}`, 0, true, false, false, 16, "",
			"sliding_window null: no window even under use_sliding_window"},
		{"qwen2 default max_window_layers", `{"model_type":"qwen2",` + base + `,"sliding_window":8,"use_sliding_window":true}`, 0, true, false, false, 16, "",
			"an absent max_window_layers is the default 28 ≥ 4 layers: no layer slides"},
		{"qwen3 layer_types sliding", `{"model_type":"qwen3",` + base + `,"head_dim":16,"sliding_window":8,"use_sliding_window":true,"max_window_layers":28,"layer_types":["sliding_attention","sliding_attention","sliding_attention","sliding_attention"]}`, 8, false, false, true, 16, "",
			"layer_types overrides max_window_layers: every layer slides"},
		{"qwen3 layer_types unused", `{"model_type":"qwen3",` + base + `,"head_dim":16,"sliding_window":8,"use_sliding_window":false,"layer_types":["sliding_attention","sliding_attention","sliding_attention","sliding_attention"]}`, 0, false, false, true, 16, "",
			"without use_sliding_window the window is None whatever layer_types says"},
		{"qwen3 layer_types mixed", `{"model_type":"qwen3",` + base + `,"sliding_window":8,"use_sliding_window":true,"layer_types":["full_attention","sliding_attention","sliding_attention","sliding_attention"]}`, 0, false, false, false, 0,
			"per-layer sliding windows are not supported", "a mix is refused, not run wrong"},
		{"qwen3 layer_types short", `{"model_type":"qwen3",` + base + `,"layer_types":["full_attention"]}`, 0, false, false, false, 0,
			`"layer_types": 1 entries for num_hidden_layers=4`, "a list of the wrong length names the field"},
		{"qwen3 layer_types unknown", `{"model_type":"qwen3",` + base + `,"layer_types":["full_attention","full_attention","chunked_attention","full_attention"]}`, 0, false, false, false, 0,
			`layer 2 is "chunked_attention"`, "an unknown layer kind names the layer"},
		{"qwen2 ignores bias keys", `{"model_type":"qwen2",` + base + `,"attention_bias":true,"mlp_bias":true}`, 0, true, false, false, 16, "",
			"modeling_qwen2 hard-codes q/k/v biases and no MLP bias: the keys change nothing"},
		{"qwen3 ignores mlp_bias", `{"model_type":"qwen3",` + base + `,"head_dim":16,"mlp_bias":true}`, 0, false, false, true, 16, "",
			"Qwen3MLP has no biases whatever mlp_bias says"},
		{"qwen3 bad use_sliding_window", `{"model_type":"qwen3",` + base + `,"sliding_window":8,"use_sliding_window":"yes"}`, 0, false, false, false, 0,
			`field "use_sliding_window"`, "a wrong type names the field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q (%s)", err, tc.err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.MLPBias {
				t.Errorf("MLPBias set for %s (%s)", c.Family, tc.reason)
			}
			if c.SlidingWindow != tc.window || c.QKVBias() != tc.qkvBias || c.OBias() != tc.oBias || c.QKNorm() != tc.qkNorm || c.HeadDim != tc.headDim {
				t.Errorf("window %d qkvBias %t oBias %t qkNorm %t headDim %d; want %d %t %t %t %d (%s)",
					c.SlidingWindow, c.QKVBias(), c.OBias(), c.QKNorm(), c.HeadDim, tc.window, tc.qkvBias, tc.oBias, tc.qkNorm, tc.headDim, tc.reason)
			}
			// A round trip keeps the raw sliding_window and the flags.
			b, err := c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseConfig(b)
			if err != nil {
				t.Fatalf("round trip: %v\n%s", err, b)
			}
			if c2.SlidingWindow != c.SlidingWindow || c2.QKVBias() != c.QKVBias() || c2.OBias() != c.OBias() || c2.HeadDim != c.HeadDim || c2.NormEps != c.NormEps {
				t.Errorf("round trip changed the config:\n%s", b)
			}
			// A depth-pruned copy (fewer layers) still parses to the same window.
			c.NumLayers = 3
			b, err = c.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if c3, err := ParseConfig(b); err != nil || c3.SlidingWindow != c.SlidingWindow {
				t.Errorf("3-layer copy: %v, window %v, want %d\n%s", err, c3, c.SlidingWindow, b)
			}
		})
	}
}
