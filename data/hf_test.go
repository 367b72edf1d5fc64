package data

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func loadFixture(t testing.TB, name string) Tokenizer {
	t.Helper()
	tok, err := LoadTokenizer(filepath.Join("testdata", "tok", name))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Expected ids are worked out by hand from make_hf_fixtures.py's vocab:
// byte-level fixtures: byte b has id b, then he=256 Ġt=257 Ġthe=258 at=259
// ĠĠ=260 ĠĠĠĠ=261 12=262 Ġcat=263 <|endoftext|>=264 <tool>=265.
func TestHFByteLevelEncode(t *testing.T) {
	cases := []struct {
		file, text string
		want       []int
		reason     string
	}{
		{"gpt2-tiny.json", "the cat", []int{116, 256, 32, 99, 259}, "h+e merges first; 'Ġt he' needs Ġt which 'the' lacks"},
		{"gpt2-tiny.json", " the", []int{258}, "Ġ t → Ġt, then Ġt he → Ġthe"},
		{"gpt2-tiny.json", "<|endoftext|> the<tool>", []int{264, 258, 265}, "added tokens are matched before the model"},
		{"gpt2-tiny.json", "    x", []int{260, 32, 32, 120}, `\s+(?!\S) leaves the last space to " x"; ĠĠ merges leftmost`},
		{"gpt2-tiny.json", "4412", []int{52, 52, 262}, "GPT-2 keeps a digit run as one word, so 1 2 merges"},
		{"llama3-tiny.json", "4412", []int{52, 52, 49, 50}, "Llama-3 splits digits in groups of 3: 441|2, so 1 and 2 never meet"},
		{"llama3-tiny.json", " cat", []int{263}, "ignore_merges takes a whole word found in the vocab"},
		{"gpt2-tiny.json", " cat", []int{32, 99, 259}, "without ignore_merges, Ġcat is unreachable"},
		{"gpt2-tiny.json", "", nil, "empty text"},
		{"llama2-tiny.json", "hello world", []int{274, 275, 276, 262, 266}, "Prepend ▁ + Replace, merges by rank"},
		{"llama2-tiny.json", "hé", []int{270, 198, 172}, "é is not in the vocab: byte fallback <0xC3><0xA9>"},
		{"metaspace-tiny.json", "hello world", []int{274, 275, 276, 262, 266}, "Metaspace prepend_scheme=first"},
		{"llama2-tiny.json", "<s>hello", []int{1, 274}, "<s> added token, then Prepend applies to the rest"},
	}
	for _, c := range cases {
		tok := loadFixture(t, c.file)
		got := tok.Encode(c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s Encode(%q) = %v, want %v (%s)", c.file, c.text, got, c.want, c.reason)
		}
	}
}

func TestHFDecode(t *testing.T) {
	cases := []struct {
		file   string
		ids    []int
		want   string
		reason string
	}{
		{"gpt2-tiny.json", []int{264, 258}, " the", "special tokens decode to nothing"},
		{"gpt2-tiny.json", []int{265, 32, 99, 259}, "<tool> cat", "non-special added token keeps its text"},
		{"llama2-tiny.json", []int{1, 270, 198, 172}, "hé", "byte fallback reassembles é; Strip removes the prefix space"},
		{"llama2-tiny.json", []int{274, 275, 276, 262, 266}, "hello world", "▁ → space"},
		{"metaspace-tiny.json", []int{274, 275, 276, 262, 266}, "hello world", "Metaspace decoder"},
	}
	for _, c := range cases {
		tok := loadFixture(t, c.file)
		if got := tok.Decode(c.ids); got != c.want {
			t.Errorf("%s Decode(%v) = %q, want %q (%s)", c.file, c.ids, got, c.want, c.reason)
		}
	}
}

func TestHFSpecials(t *testing.T) {
	tok := loadFixture(t, "llama2-tiny.json").(*HFTokenizer)
	if tok.BOS() != 1 || tok.EOS() != 2 || tok.UNK() != 0 || tok.PAD() != -1 {
		t.Errorf("specials bos=%d eos=%d unk=%d pad=%d, want 1 2 0 -1", tok.BOS(), tok.EOS(), tok.UNK(), tok.PAD())
	}
	if got := tok.EncodeSpecial("hello"); !slices.Equal(got, []int{1, 274}) {
		t.Errorf("EncodeSpecial = %v, want [1 274] (template adds <s>)", got)
	}
	g := loadFixture(t, "gpt2-tiny.json")
	if g.EOS() != 264 || g.VocabSize() != 266 {
		t.Errorf("gpt2 eos=%d vocab=%d, want 264 266", g.EOS(), g.VocabSize())
	}
}

func TestLoadTokenizerDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadTokenizer(dir); err == nil {
		t.Error("empty dir: want error")
	}
	if _, err := LoadTokenizer(filepath.Join(dir, "nope.json")); err == nil {
		t.Error("missing file: want error")
	}
	// A NeMo-style directory with one differently named .model file.
	b, err := os.ReadFile(filepath.Join("testdata", "tok", "spm-uni.model"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nemotron_2_256k.model"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(dir)
	if err != nil || tok.VocabSize() != 800 {
		t.Errorf("dir with a single *.model: %v", err)
	}
	// A tokenizer_config.json passed by mistake says what it is not.
	cfg := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(cfg, []byte(`{"bos_token": "<s>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokenizer(cfg); err == nil || !strings.Contains(err.Error(), "not a tokenizer.json") {
		t.Errorf("tokenizer_config.json: err %v, want 'not a tokenizer.json'", err)
	}
}

func TestHFByteLevelAddPrefixSpace(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tok", "gpt2-tiny.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"add_prefix_space": false`, `"add_prefix_space": true`, 1)
	tok, err := ParseHFTokenizer([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		text   string
		want   []int
		reason string
	}{
		{"the", []int{258}, "a space is prepended: ' the' → Ġthe"},
		{" the", []int{258}, "text already starting with a space gets none"},
		{"the<tool>the", []int{258, 265, 258}, "HF prepends to every stretch between added tokens"},
	}
	for _, c := range cases {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v (%s)", c.text, got, c.want, c.reason)
		}
	}
}

func TestHFBadInput(t *testing.T) {
	cases := []struct {
		json, reason string
	}{
		{`not json`, "not JSON"},
		{`{"model":{"type":"WordPiece","vocab":{}}}`, "WordPiece unsupported"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, "merge names a token not in vocab"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":["ab"]}}`, "merge without a space"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[],"byte_fallback":true}}`, "byte_fallback without <0xXX> tokens"},
		{`{"model":{"type":"BPE","vocab":{"a":-3},"merges":[]}}`, "negative id"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(?=x)"},"behavior":"Isolated"}}`, "look-ahead regex that is not a known pattern"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"normalizer":{"type":"Precompiled"}}`, "unsupported normalizer"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[],"unk_token":"<unk>"}}`, "unk_token not in vocab"},
		{`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"added_tokens":[{"id":99999999,"content":"x"}]}`, "sparse ids"},
	}
	for _, c := range cases {
		if _, err := ParseHFTokenizer([]byte(c.json)); err == nil {
			t.Errorf("%s: want error for %s", c.reason, c.json)
		}
	}
}

// TestTokenizersConcurrent: loaded tokenizers are safe for concurrent use
// (HF's word cache is shared); run with -race.
func TestTokenizersConcurrent(t *testing.T) {
	texts := []string{"the cat sat on the mat", "  x = 12345\n\tfoo()", "héllo wörld 🙂", "<|endoftext|> the end"}
	for _, name := range []string{"gpt2-tiny.json", "llama2-tiny.json", "spm-bpe-fb.model", "spm-uni-user.model"} {
		tok := loadFixture(t, name)
		want := make([][]int, len(texts))
		for i, s := range texts {
			want[i] = tok.Encode(s)
		}
		done := make(chan string, 8)
		for g := 0; g < 8; g++ {
			go func(g int) {
				for k := 0; k < 200; k++ {
					i := (g + k) % len(texts)
					if got := tok.Encode(texts[i]); !slices.Equal(got, want[i]) {
						done <- fmt.Sprintf("%s: concurrent Encode(%q) = %v, want %v", name, texts[i], got, want[i])
						return
					}
					_ = tok.Decode(want[i])
				}
				done <- ""
			}(g)
		}
		for g := 0; g < 8; g++ {
			if msg := <-done; msg != "" {
				t.Error(msg)
			}
		}
	}
}

func TestHFWarnings(t *testing.T) {
	tok, err := ParseHFTokenizer([]byte(`{"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Lowercase"}]},
		"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if w := tok.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q, want none (NFC and Lowercase are applied)", w)
	}
	if got := tok.Encode("A"); !slices.Equal(got, []int{0}) {
		t.Errorf("Encode(A) = %v, want [0] (lowercased to a)", got)
	}
	if w := loadFixture(t, "llama2-tiny.json").(*HFTokenizer).Warnings(); len(w) != 0 {
		t.Errorf("llama2 fixture warnings %q, want none", w)
	}
}

func TestHFConfigSpecials(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "tok", "llama2-tiny.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := `{"bos_token": {"content": "<s>"}, "eos_token": "<unk>", "pad_token": "[PAD]", "unk_token": null}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := tok.(*HFTokenizer)
	if h.BOS() != 1 || h.EOS() != 0 || h.PAD() != -1 || h.UNK() != 0 {
		t.Errorf("bos %d eos %d pad %d unk %d, want 1 0 -1 0 (config object form, config overrides, unknown pad absent, null keeps model unk)",
			h.BOS(), h.EOS(), h.PAD(), h.UNK())
	}
	if w := h.Warnings(); len(w) != 1 || !strings.Contains(w[0], "[PAD]") {
		t.Errorf("warnings %q, want one about [PAD]", w)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"bos_token": 7}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("bad bos_token type: err %v, want one naming tokenizer_config.json", err)
	}
}
