package model

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// Decoding with the KV cache (a prefill, then one token at a time) gives the
// logits of one full forward pass over the whole sequence.
func TestCacheParity(t *testing.T) {
	for _, name := range caseDirs {
		t.Run(name, func(t *testing.T) {
			rc := readRef(t, caseDir(name))
			m, err := Load(caseDir(name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			V := m.Cfg.VocabSize
			ids := rc.Batch
			T := len(ids[0])
			full, err := m.Forward(ids, nil)
			if err != nil {
				t.Fatal(err)
			}
			kc, err := m.NewKVCache(len(ids), T)
			if err != nil {
				t.Fatal(err)
			}
			pre := 7 // prefill a chunk, then single tokens
			fo := &ForwardOptions{Cache: kc}
			got := make([][]float32, len(ids))
			chunk := func(lo, hi int) {
				part := make([][]int, len(ids))
				for b := range ids {
					part[b] = ids[b][lo:hi]
				}
				out, err := m.Forward(part, fo)
				if err != nil {
					t.Fatal(err)
				}
				n := hi - lo
				for b := range ids {
					got[b] = append(got[b], out[b*n*V:(b+1)*n*V]...)
				}
			}
			chunk(0, pre)
			for p := pre; p < T; p++ {
				chunk(p, p+1)
			}
			if kc.Len != T {
				t.Fatalf("cache length %d, want %d", kc.Len, T)
			}
			for b := range ids {
				for i := range got[b] {
					if d := math.Abs(float64(got[b][i] - full[b*T*V+i])); d > 1e-4 {
						t.Fatalf("sequence %d position %d: cached %v, full %v", b, i/V, got[b][i], full[b*T*V+i])
					}
				}
			}
			if _, err := m.Forward([][]int{{1}, {1}}, fo); err == nil {
				t.Fatal("a full cache must refuse more tokens")
			}
		})
	}
}

func TestGenerateGreedyMatchesForward(t *testing.T) {
	for _, name := range []string{"mistral-window", "qwen2-window", "qwen3-tied-bf16-sharded"} {
		t.Run(name, func(t *testing.T) { testGenerateGreedy(t, name) })
	}
}

func testGenerateGreedy(t *testing.T, name string) {
	m, err := Load(caseDir(name), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompt := []int{5, 9, 77, 3}
	res, err := m.Generate(prompt, GenerateOptions{MaxNewTokens: 12, EOS: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tokens) != 12 || res.StoppedOnEOS {
		t.Fatalf("got %d tokens (eos %v), want 12", len(res.Tokens), res.StoppedOnEOS)
	}
	// each greedy token is the argmax of a full forward over what precedes it
	seq := append([]int(nil), prompt...)
	for i, tok := range res.Tokens {
		last, err := m.Forward([][]int{seq}, &ForwardOptions{Output: LastLogits})
		if err != nil {
			t.Fatal(err)
		}
		if want := SampleToken(last, 0, 0, 0, nil); want != tok {
			t.Fatalf("token %d: generated %d, full forward argmax %d", i, tok, want)
		}
		seq = append(seq, tok)
	}
	// stop on EOS: make the 3rd greedy token the EOS id
	res2, err := m.Generate(prompt, GenerateOptions{MaxNewTokens: 12, EOS: []int{res.Tokens[2]}})
	if err != nil {
		t.Fatal(err)
	}
	if !res2.StoppedOnEOS || len(res2.Tokens) > 3 {
		t.Fatalf("did not stop on EOS: %v", res2.Tokens)
	}
	// sampling is reproducible from the seed
	a, _ := m.Generate(prompt, GenerateOptions{MaxNewTokens: 8, Temperature: 1, TopK: 20, TopP: 0.9, Seed: 7, EOS: []int{}})
	b, _ := m.Generate(prompt, GenerateOptions{MaxNewTokens: 8, Temperature: 1, TopK: 20, TopP: 0.9, Seed: 7, EOS: []int{}})
	for i := range a.Tokens {
		if a.Tokens[i] != b.Tokens[i] {
			t.Fatal("same seed gave different samples")
		}
	}
	if _, err := m.Generate(nil, GenerateOptions{MaxNewTokens: 1}); err == nil {
		t.Fatal("empty prompt must fail")
	}
}

func TestSampleToken(t *testing.T) {
	logits := []float32{1, 5, 3, 4.9, -2}
	rng := rand.New(rand.NewSource(1))
	cases := []struct {
		temp    float64
		k       int
		p       float64
		allowed map[int]bool
		reason  string
	}{
		{0, 0, 0, map[int]bool{1: true}, "greedy takes the argmax"},
		{1, 1, 0, map[int]bool{1: true}, "top-k 1 is greedy"},
		{1, 2, 0, map[int]bool{1: true, 3: true}, "top-k 2 keeps the two best"},
		{1, 0, 0.5, map[int]bool{1: true, 3: true}, "top-p 0.5 needs the two near-tied best"},
		{100, 0, 0, map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}, "high temperature reaches everything"},
	}
	for _, c := range cases {
		seen := map[int]bool{}
		for i := 0; i < 500; i++ {
			id := SampleToken(logits, c.temp, c.k, c.p, rng)
			if !c.allowed[id] {
				t.Fatalf("%s: drew %d", c.reason, id)
			}
			seen[id] = true
		}
		if len(seen) != len(c.allowed) {
			t.Errorf("%s: drew only %v of %v", c.reason, seen, c.allowed)
		}
	}
}

func TestGenerationConfigEOS(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(goldenDir("llama-tiny"), f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	cases := []struct {
		file   string
		want   []int
		reason string
	}{
		{"", []int{2}, "no generation_config.json: config.json's eos"},
		{`{"eos_token_id": 7}`, []int{7}, "an int overrides"},
		{`{"eos_token_id": [7, 9]}`, []int{7, 9}, "a list overrides"},
		{`{"bos_token_id": 1}`, []int{2}, "no eos key: config.json's"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "generation_config.json")
		os.Remove(p)
		if c.file != "" {
			os.WriteFile(p, []byte(c.file), 0o644)
		}
		m, err := Load(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.EOS) != len(c.want) || (len(c.want) > 0 && m.EOS[0] != c.want[0]) {
			t.Errorf("%s: EOS %v want %v", c.reason, m.EOS, c.want)
		}
		m.Close()
	}
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": "x"}`), 0o644)
	if _, err := Load(dir, Options{}); err == nil {
		t.Error("a malformed eos_token_id must fail")
	}
}

func FuzzReadGenerationEOS(f *testing.F) {
	for _, s := range []string{`{"eos_token_id": 2}`, `{"eos_token_id": [1, 2]}`, `{}`, `[]`, `{"eos_token_id": null}`, `{"eos_token_id": "2"}`, `nul`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		ids, err := ReadGenerationEOS(dir)
		if err != nil && ids != nil {
			t.Fatal("ids returned with an error")
		}
	})
}
