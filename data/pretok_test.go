package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPreTokenizerGolden checks the hand-written GPT-2/Llama-3/Qwen2 split
// scanners against Python's regex module (make_pretok_golden.py), which
// implements the look-ahead `\s+(?!\S)` that Go's regexp lacks.
func TestPreTokenizerGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tok", "pretok_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]any
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	pats := map[string]string{"gpt2": GPT2Pattern, "llama3": Llama3Pattern, "qwen2": Qwen2Pattern}
	bad := 0
	for name, pat := range pats {
		sp, err := newSplitter(pat)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := sp.(scanSplitter); !ok {
			t.Fatalf("%s: want the hand-written scanner, got %T", name, sp)
		}
		for _, c := range cases {
			text := c["text"].(string)
			var want []string
			for _, p := range c[name].([]any) {
				want = append(want, p.(string))
			}
			var got []string
			sp.split(text, func(p string) { got = append(got, p) })
			if !slices.Equal(got, want) {
				bad++
				if bad < 10 {
					t.Errorf("%s split(%q)\n got %q\nwant %q", name, text, got, want)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d splits differ", bad)
	}
}

// FuzzPreTokenizerCovers checks that the scanners never lose or invent bytes.
func FuzzPreTokenizerCovers(f *testing.F) {
	f.Add("Hello  world\n\n 123'S")
	f.Add("\xff\xfe a")
	f.Fuzz(func(t *testing.T, s string) {
		for _, pat := range []string{GPT2Pattern, Llama3Pattern, Qwen2Pattern} {
			sp, _ := newSplitter(pat)
			out := ""
			sp.split(s, func(p string) {
				if p == "" {
					t.Fatalf("empty piece for %q", s)
				}
				out += p
			})
			if out != s {
				t.Fatalf("pieces of %q join to %q", s, out)
			}
		}
	})
}

// FuzzByteLevelRoundTrip: the bytes↔unicode map is a bijection and the
// byte-level fixture tokenizer decodes what it encodes.
func FuzzByteLevelRoundTrip(f *testing.F) {
	tok, err := LoadTokenizer(filepath.Join("testdata", "tok", "gpt2-tiny.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("the cat  sat\n\n on 12 mats")
	f.Add("\x00\xff\x80 invalid utf8 \xc3")
	f.Fuzz(func(t *testing.T, s string) {
		if got := string(byteLevelDecode(byteLevelEncode(s), nil)); got != s {
			t.Fatalf("byte map round trip %q → %q", s, got)
		}
		if !utf8.ValidString(s) || strings.Contains(s, "<|endoftext|>") {
			return // invalid UTF-8 cannot come back as is; special tokens decode to ""
		}
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}
