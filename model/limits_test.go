package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allocDuring is how many bytes f allocates (TotalAlloc delta): a
// deterministic stand-in for "fails fast with bounded memory" that needs no
// clock. Tests using it must not run in parallel.
func allocDuring(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestHugeLayerCountFailsWithBoundedMemory(t *testing.T) {
	// A config claiming 2^18 layers over a 2-layer checkpoint: building
	// every expected tensor name first costs hundreds of MB (at the 2^24
	// cap, tens of GB); the count of tensors the weights hold bounds it.
	cfg, m := loadGoldenMem(t, "llama-tiny")
	c2 := *cfg
	c2.NumLayers = 1 << 18
	dir := ckFixture(t, &c2, m)
	var err error
	used := allocDuring(func() {
		var ck *Checkpoint
		if ck, err = OpenCheckpoint(dir); err == nil {
			ck.Close()
		}
	})
	if err == nil {
		t.Fatal("a config with 2^18 layers over 2 layers of weights was accepted")
	}
	for _, want := range []string{"num_hidden_layers = 262144", dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should contain %q", err, want)
		}
	}
	if used > 16<<20 {
		t.Errorf("refusing the config allocated %d MiB; want it bounded by the checkpoint's size (< 16 MiB)", used>>20)
	}
	// model.New over the same source refuses it the same way.
	if _, err := New(&c2, m, Options{}); err == nil || !strings.Contains(err.Error(), "num_hidden_layers") {
		t.Errorf("New: got %v, want the layer count named", err)
	}
}

func TestConfigSizeLimits(t *testing.T) {
	base := `{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100`
	cases := []struct {
		name, extra, want, reason string
	}{
		{"zero positions", `,"max_position_embeddings":0}`, "max_position_embeddings must be positive", "no sequence could run"},
		{"negative positions", `,"max_position_embeddings":-5}`, "max_position_embeddings must be positive", "corrupt size"},
		{"huge positions", `,"max_position_embeddings":100000000}`, "max_position_embeddings = 100000000 is implausibly large", "RoPE tables and caches are sized by it"},
		{"huge product", `,"hidden_size":16777216,"intermediate_size":16777216,"num_attention_heads":1}`, "elements", "each size is under the cap but a weight matrix of 2^48 elements is not plausible (and its byte size overflows)"},
		{"eos past vocab", `,"eos_token_id":100}`, "eos_token_id 100 is outside the vocabulary [0,100)", "generation would never stop"},
		{"eos list past vocab", `,"eos_token_id":[2,300]}`, "eos_token_id 300 is outside the vocabulary", "every id of the list is checked"},
		{"negative eos", `,"eos_token_id":-1}`, "eos_token_id -1 is outside the vocabulary", "negative ids never match a token"},
		{"bos past vocab", `,"bos_token_id":100}`, "bos_token_id 100 is outside the vocabulary [0,100)", "a prompt starting with it fails the forward pass"},
		{"negative bos", `,"bos_token_id":-3}`, "bos_token_id -3 is outside the vocabulary", "absent is null, not negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base + c.extra
			var probe map[string]any
			if err := json.Unmarshal([]byte(in), &probe); err != nil {
				t.Fatalf("bad test input %s: %v", in, err)
			}
			_, err := ParseConfig([]byte(in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want an error containing %q (%s)", err, c.want, c.reason)
			}
		})
	}
}

func TestGenerationEOSOutsideVocabulary(t *testing.T) {
	// generation_config.json overrides config.json's EOS: its ids are
	// checked against the vocabulary too, and the error names the file.
	cfg, m := loadGoldenMem(t, "llama-tiny")
	dir := ckFixture(t, cfg, m)
	p := filepath.Join(dir, "generation_config.json")
	os.WriteFile(p, []byte(`{"eos_token_id":[2,999]}`), 0o644)
	_, err := Load(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "eos_token_id 999 is outside the vocabulary [0,256)") {
		t.Fatalf("got %v; want the file and the id named", err)
	}
}

func TestMaxPositionEmbeddingsEnforced(t *testing.T) {
	cfg, src := loadGoldenMem(t, "llama-tiny")
	c2 := *cfg
	c2.MaxPositionEmbeddings = 8
	m, err := New(&c2, src, Options{Weights: WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(n int) [][]int {
		s := make([]int, n)
		for i := range s {
			s[i] = 3 + i
		}
		return [][]int{s}
	}
	if _, err := m.Forward(ids(8), nil); err != nil {
		t.Fatalf("8 positions fit max_position_embeddings 8: %v", err)
	}
	cases := []struct {
		name   string
		run    func() error
		reason string
	}{
		{"forward", func() error { _, err := m.Forward(ids(9), nil); return err }, "a sequence longer than the model's positions"},
		{"token nll", func() error { _, err := m.TokenNLL(ids(9), nil); return err }, "the streamed NLL runs the same forward pass"},
		{"kv cache", func() error { _, err := m.NewKVCache(1, 9); return err }, "a cache past the positions is memory for nothing"},
		{"generate", func() error {
			_, err := m.Generate([]int{3, 4, 5}, GenerateOptions{MaxNewTokens: 6})
			return err
		}, "prompt + new tokens past the positions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if err == nil || !strings.Contains(err.Error(), "MaxPositionEmbeddings 8") {
				t.Fatalf("got %v; want the limit named (%s)", err, c.reason)
			}
		})
	}
}

func TestNonFiniteWeightsAreReported(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		cfg, src := loadGoldenMem(t, "llama-tiny")
		const name = "model.layers.1.mlp.down_proj.weight"
		info, _ := src.Info(name)
		w := make([]float32, info.NumElements())
		src.ReadF32(name, w)
		w[5] = bad
		src.SetF32(name, info.Shape, w)
		dir := ckFixture(t, cfg, src)
		for _, mode := range []WeightMode{WeightsResident, WeightsStreaming} {
			m, err := Load(dir, Options{Weights: mode})
			if err != nil {
				t.Fatal(err)
			}
			_, nerr := m.TokenNLL([][]int{{1, 5, 9, 12}}, nil)
			_, gerr := m.Generate([]int{1, 5}, GenerateOptions{MaxNewTokens: 4})
			m.Close()
			for what, err := range map[string]error{"TokenNLL": nerr, "Generate": gerr} {
				if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), dir) {
					t.Errorf("%v weights, %v: %s gave %v; want the tensor and the checkpoint named", bad, mode, what, err)
				}
			}
		}
	}
}

func TestGenerateOptionsCheckNumbers(t *testing.T) {
	cases := []struct {
		opt    GenerateOptions
		want   string
		reason string
	}{
		{GenerateOptions{MaxNewTokens: -2}, "max new tokens must be positive", "negative counts are not 'none'"},
		{GenerateOptions{MaxNewTokens: 2, TopK: 5}, "Temperature 0 is greedy", "top-k would be ignored by greedy decoding"},
		{GenerateOptions{MaxNewTokens: 2, TopP: 0.5}, "Temperature 0 is greedy", "top-p would be ignored by greedy decoding"},
		{GenerateOptions{MaxNewTokens: 2, Temperature: math.Inf(1)}, "temperature must be finite", "an infinite temperature is a uniform draw"},
		{GenerateOptions{MaxNewTokens: 2, Temperature: 1, TopP: math.NaN()}, "TopP", "NaN compares false everywhere"},
	}
	for _, c := range cases {
		err := c.opt.Check([]int{1})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v; want %q (%s)", c.opt, err, c.want, c.reason)
		}
	}
	for _, ok := range []GenerateOptions{{MaxNewTokens: 1}, {MaxNewTokens: 1, TopP: 1}, {MaxNewTokens: 1, Temperature: 0.5, TopK: 3, TopP: 0.9}} {
		if err := ok.Check([]int{1}); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}
