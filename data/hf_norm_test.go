package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func applyNormalizer(t testing.TB, js, text string) string {
	t.Helper()
	steps, err := buildNormalizer(json.RawMessage(js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	for _, s := range steps {
		text = s(text, true)
	}
	return text
}

// The expected strings follow HF tokenizers' normalizers
// (tokenizers/src/normalizers/*.rs, NormalizedString); the differential
// test (TestHFNormalizerDifferential) checks the same against the real
// library on many more characters.
func TestHFNormalizers(t *testing.T) {
	cases := []struct {
		norm, in, want, reason string
	}{
		{`{"type":"NFC"}`, "e\u0301", "\u00e9", "e + combining acute composes to é"},
		{`{"type":"NFC"}`, "\u212b", "\u00c5", "ANGSTROM SIGN is canonically Å"},
		{`{"type":"NFC"}`, "\u1100\u1161\u11a8", "\uac01", "conjoining jamo compose to the syllable 각"},
		{`{"type":"NFC"}`, "\ufb01", "\ufb01", "ﬁ has only a compatibility decomposition: NFC keeps it"},
		{`{"type":"NFD"}`, "\u00e9", "e\u0301", "é decomposes"},
		{`{"type":"NFD"}`, "\uac01", "\u1100\u1161\u11a8", "Hangul syllables decompose algorithmically"},
		{`{"type":"NFKC"}`, "\ufb01x\u2460", "fix1", "compatibility forms fold: ﬁ → fi, ① → 1"},
		{`{"type":"NFKD"}`, "\u00bd\u00e9", "1\u20442e\u0301", "½ → 1⁄2 and é decomposed"},
		{`{"type":"NFC"}`, "a\U00016ff0\u0301", "a\U00016ff0\u0301", "U+16FF0 (Unicode 13, class 6) is class 0 in HF's Unicode 9.0 tables: it blocks a + U+0301 (Go's NFC alone gives á U+16FF0)"},
		{`{"type":"NFKC"}`, "\u32ff\u2460", "\u32ff1", "U+32FF (Unicode 12.1) is unknown to HF: kept, while ① folds"},
		{`{"type":"NFC"}`, "e" + strings.Repeat("\u0301", 35), "\u00e9" + strings.Repeat("\u0301", 34), "35 marks: no U+034F inserted (Go's norm is stream-safe, HF is not)"},
		{`{"type":"NFD"}`, "a" + strings.Repeat("\u0301\u0323", 20), "a" + strings.Repeat("\u0323", 20) + strings.Repeat("\u0301", 20), "a 40-mark run is still put in canonical order (class 220 before 230)"},
		{`{"type":"Lowercase"}`, "HeLLo ΣΑΣ", "hello σασ", "per character, no final-sigma context (Rust char::to_lowercase)"},
		{`{"type":"Lowercase"}`, "\u0130x", "i\u0307x", "İ lowercases to two characters (full mapping)"},
		{`{"type":"Lowercase"}`, "A\xffB", "a\xffb", "bytes that are not UTF-8 pass through"},
		{`{"type":"Lowercase"}`, "\U00010d50\ua7cb", "\U00010d70\u0264", "Unicode 16 pairs Rust knows and Go's tables lack"},
		{`{"type":"Strip"}`, " \t\u3000hi \u00a0", "hi", "both sides by default; Unicode White_Space"},
		{`{"type":"Strip","strip_left":false,"strip_right":true}`, "  hi  ", "  hi", "right only"},
		{`{"type":"Strip","strip_left":true,"strip_right":false}`, "  hi  ", "hi  ", "left only"},
		{`{"type":"Strip"}`, "\u200bhi", "\u200bhi", "ZERO WIDTH SPACE is not White_Space"},
		{`{"type":"StripAccents"}`, "e\u0301a\u20dd", "ea", "Mn and Me marks go"},
		{`{"type":"StripAccents"}`, "a\U00016ff0", "a\U00016ff0", "a mark newer than Unicode 9.0 is not one to HF"},
		{`{"type":"Replace","pattern":{"String":" "},"content":"▁"}`, "a b  c", "a▁b▁▁c", "every occurrence"},
		{`{"type":"Replace","pattern":{"String":"aa"},"content":"b"}`, "aaa", "ba", "leftmost, non-overlapping"},
		{`{"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}`, "a   b c", "a b c", "regex pattern"},
		{`{"type":"Prepend","prepend":"▁"}`, "hi", "▁hi", "prefix added"},
		{`{"type":"Prepend","prepend":"▁"}`, "", "", "empty text stays empty"},
		{`{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`,
			"hello world", "▁hello▁world", "Llama-2's sequence, in order"},
		{`{"type":"Sequence","normalizers":[{"type":"NFKD"},{"type":"StripAccents"},{"type":"Lowercase"}]}`,
			"Ça Ḿarche", "ca marche", "decompose, drop accents, lowercase"},
		{`{"type":"Sequence","normalizers":[]}`, "AbC", "AbC", "an empty sequence does nothing"},
		{`null`, "AbC", "AbC", "no normalizer"},
	}
	for _, c := range cases {
		if got := applyNormalizer(t, c.norm, c.in); got != c.want {
			t.Errorf("%s on %+q = %+q, want %+q (%s)", c.norm, c.in, got, c.want, c.reason)
		}
	}
}

func TestHFNormalizerErrors(t *testing.T) {
	cases := []struct {
		norm, want, reason string
	}{
		{`{"type":"Precompiled","precompiled_charsmap":""}`, `"Precompiled" not supported`, "unknown types stay refused by name"},
		{`{"type":"Nmt"}`, `"Nmt" not supported`, "not implemented"},
		{`{"normalizers":[]}`, "without a \"type\"", "no type"},
		{`{"type":"Sequence"}`, "without \"normalizers\"", "Sequence needs its list"},
		{`{"type":"Sequence","normalizers":[{"type":"Bogus"}]}`, `"Bogus" not supported`, "errors inside a Sequence surface"},
		{`{"type":"Replace","content":"x"}`, "pattern", "Replace without a pattern"},
		{`{"type":"Replace","pattern":{"String":""},"content":"x"}`, "empty pattern", "an empty pattern is refused, not guessed"},
		{`{"type":"Replace","pattern":{"String":"a"}}`, "content", "Replace without content"},
		{`{"type":"Replace","pattern":{"Regex":"(?<=a)b"},"content":"x"}`, "RE2", "look-behind is beyond Go's regexp"},
		{`{"type":"Prepend"}`, "prepend", "Prepend without its string"},
		{`[1]`, "cannot unmarshal", "not an object"},
	}
	for _, c := range cases {
		_, err := buildNormalizer(json.RawMessage(c.norm))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q (%s)", c.norm, err, c.want, c.reason)
		}
	}
	// Through ParseHFTokenizer the error names the normalizer.
	_, err := ParseHFTokenizer([]byte(`{"normalizer":{"type":"Bogus"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`))
	if err == nil || !strings.Contains(err.Error(), "normalizer") || !strings.Contains(err.Error(), "Bogus") {
		t.Errorf("ParseHFTokenizer with an unknown normalizer: err %v", err)
	}
}

// withNormalizer is a fixture with its normalizer replaced.
func withNormalizer(t testing.TB, fixture, normJSON string) *HFTokenizer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tok", fixture))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["normalizer"] = json.RawMessage(normJSON)
	b, _ = json.Marshal(m)
	tok, err := ParseHFTokenizer(b)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// byteIDs are the gpt2-tiny ids of s when no merge applies (byte b has id b).
func byteIDs(s string) []int {
	var ids []int
	for i := 0; i < len(s); i++ {
		ids = append(ids, int(s[i]))
	}
	return ids
}

// TestHFEncodeNormalized checks where the normalizer runs: between added
// tokens, before the pre-tokenizer, and on normalized=true added tokens.
func TestHFEncodeNormalized(t *testing.T) {
	nfc := withNormalizer(t, "gpt2-tiny.json", `{"type":"NFC"}`)
	lower := withNormalizer(t, "gpt2-tiny.json", `{"type":"Lowercase"}`)
	cases := []struct {
		tok    *HFTokenizer
		text   string
		want   []int
		reason string
	}{
		{nfc, "e\u0301", byteIDs("\u00e9"), "NFC runs before the byte map"},
		{nfc, "\u212b<|endoftext|>e\u0301", slices.Concat(byteIDs("\u00c5"), []int{264}, byteIDs("\u00e9")), "each stretch between added tokens is normalized"},
		{lower, "THE", []int{116, 256}, "Lowercase before BPE: t + he"},
		{lower, "<|ENDOFTEXT|>", byteIDs("<|endoftext|>"), "a normalized=false token matches the raw text only: after lowercasing it is plain text"},
		{lower, "<|endoftext|>", []int{264}, "raw match"},
	}
	for _, c := range cases {
		if got := c.tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%+q) = %v, want %v (%s)", c.text, got, c.want, c.reason)
		}
	}
	// normalized=true: matched after normalization, by its normalized content.
	b, err := os.ReadFile(filepath.Join("testdata", "tok", "gpt2-tiny.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), `"content": "<tool>",
   "single_word": false,
   "lstrip": false,
   "rstrip": false,
   "normalized": false`, `"content": "<TOOL>",
   "single_word": false,
   "lstrip": false,
   "rstrip": false,
   "normalized": true`, 1)
	if s == string(b) {
		t.Fatal("fixture layout changed: <tool> not found")
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(s), &m)
	m["normalizer"] = json.RawMessage(`{"type":"Lowercase"}`)
	jb, _ := json.Marshal(m)
	tok, err := ParseHFTokenizer(jb)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text   string
		want   []int
		reason string
	}{
		{"a<Tool>", []int{97, 265}, "<Tool> lowercases to <tool>, the normalized content of <TOOL>"},
		{"<TOOL>", []int{265}, "the token's own spelling normalizes the same way"},
	} {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("normalized added token: Encode(%q) = %v, want %v (%s)", c.text, got, c.want, c.reason)
		}
	}
}

// FuzzHFNormalizer: any normalizer JSON gives an error or steps that map
// any text without panicking; valid UTF-8 stays valid, and the Unicode
// forms are idempotent (HF's, not Go's: output need not be Go-normal).
func FuzzHFNormalizer(f *testing.F) {
	for _, s := range []string{
		`{"type":"NFC"}`, `{"type":"NFKD"}`, `{"type":"Lowercase"}`, `{"type":"Strip","strip_left":false}`,
		`{"type":"Replace","pattern":{"String":" "},"content":"▁"}`, `{"type":"Replace","pattern":{"Regex":"\\s+"},"content":" "}`,
		`{"type":"Prepend","prepend":"▁"}`, `{"type":"StripAccents"}`,
		`{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"Lowercase"},{"type":"Sequence","normalizers":[{"type":"NFC"}]}]}`,
		`{"type":"Sequence","normalizers":null}`, `{"type":"NFD"}`, `{"type":"NFKC"}`, `{"type":"Replace","pattern":{"String":null},"content":1}`,
	} {
		f.Add(s, "Héllo e\u0301 \u212b \u1100\u1161 İ  ")
	}
	f.Add(`{"type":"NFKC"}`, "a"+strings.Repeat("\u0301\u0323\u0345", 12)+"\U00016ff0\u0301\u1100\u1161\u11a8")
	f.Fuzz(func(t *testing.T, js, text string) {
		steps, err := buildNormalizer(json.RawMessage(js))
		if err != nil {
			return
		}
		out := text
		for _, s := range steps {
			out = s(out, true)
		}
		if utf8.ValidString(text) && !utf8.ValidString(out) {
			t.Fatalf("%s made %+q invalid UTF-8: %+q", js, text, out)
		}
		forms := map[string]norm.Form{`{"type":"NFC"}`: norm.NFC, `{"type":"NFD"}`: norm.NFD, `{"type":"NFKC"}`: norm.NFKC, `{"type":"NFKD"}`: norm.NFKD}
		if f, ok := forms[js]; ok && utf8.ValidString(text) {
			if again := hfNormalize(f, out); again != out {
				t.Fatalf("%s not idempotent on %+q: %+q then %+q", js, text, out, again)
			}
		}
	})
}
