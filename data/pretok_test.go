package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPreTokenizerGolden checks the split engines against Python's regex
// module (make_pretok_golden.py), which implements the look-ahead
// `\s+(?!\S)` that Go's regexp lacks: the hand-written GPT-2/Llama-3/Qwen2
// scanners, and the generic head-regexp + whitespace-tail engine on those
// patterns and on GPT-4o's and DeepSeek-V3's.
func TestPreTokenizerGolden(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tok", "pretok_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]any
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	pats := map[string]string{}
	for k, v := range cases[0]["patterns"].(map[string]any) {
		pats[k] = v.(string)
	}
	cases = cases[1:]
	if pats["gpt2"] != GPT2Pattern || pats["llama3"] != Llama3Pattern || pats["qwen2"] != Qwen2Pattern {
		t.Fatal("golden patterns differ from the Go constants")
	}
	type engine struct {
		name, pat string
		sp        splitter
	}
	var engines []engine
	for name, pat := range pats {
		sp, err := newSplitter(pat)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		engines = append(engines, engine{name, pat, sp})
		if head, ok := strings.CutSuffix(pat, "|"+wsTailPattern); ok {
			if _, isScan := sp.(scanSplitter); isScan {
				re := regexp.MustCompile(`^(?:` + unicodeClasses(head) + `)`)
				engines = append(engines, engine{name + "/generic", pat, headTailSplitter{re}})
			}
		}
	}
	if len(engines) != 8 {
		t.Fatalf("%d engines, want 3 scanners + 3 generic twins + o200k + deepseek", len(engines))
	}
	bad := 0
	for _, e := range engines {
		gold := strings.TrimSuffix(e.name, "/generic")
		for _, c := range cases {
			text := c["text"].(string)
			var want []string
			for _, p := range c[gold].([]any) {
				want = append(want, p.(string))
			}
			var got []string
			e.sp.split(text, func(p string) { got = append(got, p) })
			if !slices.Equal(got, want) {
				bad++
				if bad < 10 {
					t.Errorf("%s split(%q)\n got %q\nwant %q", e.name, text, got, want)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d splits differ", bad)
	}
}

func TestUnicodeClasses(t *testing.T) {
	cases := []struct{ in, want, reason string }{
		{`\s+`, "[" + whiteSpace + "]+", "\\s outside a class becomes a Unicode class"},
		{`[^\s\p{L}]`, "[^" + whiteSpace + `\p{L}]`, "\\s inside a class is spliced in"},
		{`\S`, "[^" + whiteSpace + "]", "\\S outside a class is negated"},
		{`\\s`, `\\s`, "an escaped backslash followed by s is not \\s"},
		{`[]s]\d`, `[]s]\p{Nd}`, "] right after [ is literal; \\d is Unicode digits"},
	}
	for _, c := range cases {
		if got := unicodeClasses(c.in); got != c.want {
			t.Errorf("unicodeClasses(%q) = %q, want %q (%s)", c.in, got, c.want, c.reason)
		}
	}
}

// FuzzPreTokenizerCovers checks that the scanners never lose or invent bytes.
func FuzzPreTokenizerCovers(f *testing.F) {
	f.Add("Hello  world\n\n 123'S")
	f.Add("\xff\xfe a")
	f.Fuzz(func(t *testing.T, s string) {
		generic := headTailSplitter{regexp.MustCompile(`^(?:` +
			unicodeClasses(strings.TrimSuffix(Llama3Pattern, "|"+wsTailPattern)) + `)`)}
		for _, sp := range []splitter{scanSplitter{style: styleGPT2}, scanSplitter{style: styleLlama3, maxDigits: 3},
			generic, regexSplitter{regexp.MustCompile(`\p{N}{1,3}`)}} {
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

func TestLossyUTF8(t *testing.T) {
	cases := []struct{ in, want, reason string }{
		{"abc", "abc", "valid text is unchanged"},
		{"a\xe2\x82", "a\uFFFD", "truncated 3-byte character is one replacement"},
		{"\xff\xfe", "\uFFFD\uFFFD", "each invalid lead byte is its own replacement"},
		{"\xe0\x80\x80", "\uFFFD\uFFFD\uFFFD", "overlong E0 80: 80 cannot follow E0, so three"},
		{"\xed\xa0\x80x", "\uFFFD\uFFFD\uFFFDx", "surrogate ED A0 is ill-formed from the second byte"},
		{"\xf0\x9f\x99", "\uFFFD", "truncated emoji"},
		{"\xf0\x9f\x99\x82\x80", "🙂\uFFFD", "stray continuation byte after a valid character"},
	}
	for _, c := range cases {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q (%s)", c.in, got, c.want, c.reason)
		}
	}
}

func TestSplitBehaviors(t *testing.T) {
	cases := []struct {
		behavior string
		invert   bool
		want     []string
		reason   string
	}{
		{"Removed", false, []string{"the", "final", "countdown"}, "HF docs example: delimiters dropped"},
		{"Isolated", false, []string{"the", "-", "final", "-", "-", "countdown"}, "each delimiter alone"},
		{"MergedWithPrevious", false, []string{"the-", "final-", "-", "countdown"}, "a delimiter joins the piece before it once"},
		{"MergedWithNext", false, []string{"the", "-final", "-", "-countdown"}, "a delimiter joins the piece after it"},
		{"Contiguous", false, []string{"the", "-", "final", "--", "countdown"}, "runs of delimiters stay together"},
		{"Removed", true, []string{"-", "-", "-"}, "invert: the words are the delimiters"},
	}
	for _, c := range cases {
		var got []string
		applyBehavior(stringSplitter("-"), c.behavior, c.invert, "the-final--countdown", func(p string) { got = append(got, p) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%s invert=%v: %q, want %q (%s)", c.behavior, c.invert, got, c.want, c.reason)
		}
	}
}

func TestOtherPreTokenizers(t *testing.T) {
	cases := []struct {
		json, text string
		want       []string
		reason     string
	}{
		{`{"type":"WhitespaceSplit"}`, " Hey  man!\tok ", []string{"Hey", "man!", "ok"}, "split on whitespace, which is dropped"},
		{`{"type":"Whitespace"}`, "Hey man!! naïve_x", []string{"Hey", "man", "!!", "naïve_x"}, `\w+|[^\w\s]+ with Unicode \w`},
		{`{"type":"Punctuation","behavior":"Isolated"}`, "a,b$(c)é", []string{"a", ",", "b", "$", "(", "c", ")", "é"}, "ASCII punctuation and symbols are isolated"},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithPrevious","invert":false}`, "a-b", []string{"a-", "b"}, "Split with a behaviour"},
		{`{"type":"Digits","individual_digits":true}`, "ab123", []string{"ab", "1", "2", "3"}, "individual digits"},
	}
	for _, c := range cases {
		steps, err := buildPreTokenizer(json.RawMessage(c.json))
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		words := []string{c.text}
		for _, s := range steps {
			words = s(words, true)
		}
		if !slices.Equal(words, c.want) {
			t.Errorf("%s(%q) = %q, want %q (%s)", c.json, c.text, words, c.want, c.reason)
		}
	}
}
