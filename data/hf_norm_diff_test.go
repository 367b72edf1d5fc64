package data

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// hfNormFixture is testdata/tok/hf_normalizer_ids.json, written by
// make_hf_normalizer_ids.js with Hugging Face tokenizers' Node binding.
type hfNormFixture struct {
	Tokenizers string `json:"tokenizers"`
	Cases      []struct {
		Name               string          `json:"name"`
		Tokenizer          string          `json:"tokenizer"`
		Normalizer         json.RawMessage `json:"normalizer"`
		Texts              []string        `json:"texts"`
		IDs                [][]int         `json:"ids"`
		IDsSpecial         [][]int         `json:"ids_special"`
		SpecialAddsNothing bool            `json:"special_adds_nothing"`
	} `json:"cases"`
}

// readTokFixture reads testdata/tok/name, gunzipping a .gz.
func readTokFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tok", name))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(name) != ".gz" {
		return b
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if b, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	return b
}

var qwen3Once struct {
	sync.Once
	dir string
}

// qwen3Dir is a directory holding Qwen3's real tokenizer.json and
// tokenizer_config.json (testdata/tok/qwen3, gunzipped once per run).
func qwen3Dir(t testing.TB) string {
	t.Helper()
	qwen3Once.Do(func() {
		dir, err := os.MkdirTemp("", "minitron-qwen3-tok")
		if err != nil {
			t.Fatal(err)
		}
		cfg := readTokFixture(t, "qwen3/tokenizer_config.json")
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), readTokFixture(t, "qwen3/tokenizer.json.gz"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		qwen3Once.dir = dir
	})
	if qwen3Once.dir == "" {
		t.Fatal("qwen3 fixture could not be prepared")
	}
	return qwen3Once.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if qwen3Once.dir != "" {
		os.RemoveAll(qwen3Once.dir)
	}
	os.Exit(code)
}

// TestHFNormalizerDifferential compares Encode with the ids Hugging Face
// tokenizers gave (make_hf_normalizer_ids.js): Qwen3's real tokenizer.json
// (NFC) on texts with combining marks, conjoining jamo, compatibility
// characters, added tokens and ordinary text, and each normalizer type on
// the tiny byte-level and Llama-2-style fixtures. Exact equality, no
// tolerance.
func TestHFNormalizerDifferential(t *testing.T) {
	var fx hfNormFixture
	if err := json.Unmarshal(readTokFixture(t, "hf_normalizer_ids.json"), &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Cases) == 0 {
		t.Fatal("fixture has no cases")
	}
	texts, ids := 0, 0
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			var tok *HFTokenizer
			var err error
			if c.Name == "qwen3" {
				tok, err = LoadHFTokenizer(filepath.Join(qwen3Dir(t), "tokenizer.json"))
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(readTokFixture(t, c.Tokenizer), &m); err != nil {
					t.Fatal(err)
				}
				if c.Normalizer != nil {
					m["normalizer"] = c.Normalizer
				}
				b, _ := json.Marshal(m)
				if tok, err = ParseHFTokenizer(b); err != nil {
					t.Fatal(err)
				}
			}
			if len(c.IDs) != len(c.Texts) || c.IDsSpecial != nil && len(c.IDsSpecial) != len(c.Texts) {
				t.Fatalf("fixture: %d texts, %d ids, %d ids_special", len(c.Texts), len(c.IDs), len(c.IDsSpecial))
			}
			bad := 0
			for i, text := range c.Texts {
				got := tok.Encode(text)
				want := c.IDs[i]
				texts++
				ids += len(want)
				if !slices.Equal(got, want) && len(got)+len(want) > 0 {
					if bad++; bad <= 3 {
						t.Errorf("Encode(%+q)\n got %v\nwant %v", text, got, want)
					}
				}
				sp := tok.EncodeSpecial(text)
				switch {
				case c.IDsSpecial != nil && !slices.Equal(sp, c.IDsSpecial[i]):
					t.Errorf("EncodeSpecial(%+q) = %v, want %v", text, sp, c.IDsSpecial[i])
				case c.SpecialAddsNothing && !slices.Equal(sp, got):
					t.Errorf("EncodeSpecial(%+q) = %v adds to Encode's %v; HF adds nothing", text, sp, got)
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d texts differ from tokenizers %s", bad, len(c.Texts), fx.Tokenizers)
			}
		})
	}
	t.Logf("%d texts, %d ids compared with tokenizers %s", texts, ids, fx.Tokenizers)
}

// TestQwen3Specials: Qwen3's tokenizer_config.json says "bos_token": null,
// so there is no BOS, and the ordinary vocabulary entry "<s>" (id 128245)
// must not be guessed as one; eos and pad are what the config names.
func TestQwen3Specials(t *testing.T) {
	tok, err := LoadTokenizer(qwen3Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	h := tok.(*HFTokenizer)
	if id, ok := h.TokenID("<s>"); !ok || id != 128245 {
		t.Fatalf("<s> = %d %v, want the ordinary vocabulary entry 128245", id, ok)
	}
	cases := []struct {
		name      string
		got, want int
		reason    string
	}{
		{"bos", h.BOS(), -1, `"bos_token": null: none, and <s> is ordinary text`},
		{"eos", h.EOS(), 151645, `"eos_token": "<|im_end|>"`},
		{"pad", h.PAD(), 151643, `"pad_token": "<|endoftext|>"`},
		{"unk", h.UNK(), -1, `"unk_token": null and the model has no unk_token`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d (%s)", c.name, c.got, c.want, c.reason)
		}
	}
	if got := h.EncodeSpecial("hi"); !slices.Equal(got, h.Encode("hi")) {
		t.Errorf("EncodeSpecial(hi) = %v, want Encode's %v (the post-processor adds nothing)", got, h.Encode("hi"))
	}
	if w := h.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q, want none (the NFC normalizer is applied)", w)
	}
	// Without tokenizer_config.json (a bare tokenizer.json) the old guess
	// from conventional names still finds the vocabulary's <s>: that is
	// what the config prevents.
	bare, err := ParseHFTokenizer(readTokFixture(t, "qwen3/tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if bare.BOS() != 128245 {
		t.Errorf("bare tokenizer.json: bos %d, want the name guess 128245", bare.BOS())
	}
}
