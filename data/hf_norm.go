package data

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/rangetable"
)

// Normalizers of a tokenizer.json, with the semantics of Hugging Face
// tokenizers' normalizers (tokenizers/src/normalizers/ and
// NormalizedString): each step maps the whole text between two added
// tokens, in the order the Sequence gives.
//
//   - NFC, NFD, NFKC, NFKD: the Unicode normalization forms, as HF's
//     tables give them (hfNormalize): Unicode 9.0, no stream-safe CGJ.
//   - Lowercase: Rust's char::to_lowercase per character, the full mapping:
//     U+0130 (İ) becomes "i̇" (two characters), the rest as unicode.ToLower;
//     no context (a final Σ is σ).
//   - Strip: Unicode White_Space (Rust's char::is_whitespace) off the left
//     and/or right (strip_left, strip_right; both default true).
//   - Replace: every leftmost non-overlapping match of a String (literal)
//     or Regex pattern becomes content.
//   - Prepend: the prefix, only on a non-empty text.
//   - StripAccents: removes combining marks (categories Mn, Mc, Me, of
//     Unicode 9.0 as HF's table).
//   - Sequence: its normalizers in order.
//
// Any other type (Precompiled, Bert, Nmt, ByteLevel) is refused by name.

// normStep maps text; first marks the first piece of the input.
type normStep func(s string, first bool) string

func buildNormalizer(raw json.RawMessage) ([]normStep, error) {
	c, err := parseComponent(raw)
	if c == nil || err != nil {
		return nil, err
	}
	switch c.typ() {
	case "Sequence":
		return buildSequence(c, "normalizers", buildNormalizer)
	case "Prepend":
		p, ok := c.str("prepend")
		if !ok {
			return nil, fmt.Errorf("Prepend: want a string \"prepend\"")
		}
		return []normStep{func(s string, _ bool) string {
			if s == "" {
				return s
			}
			return p + s
		}}, nil
	case "Replace":
		return buildReplace(c)
	case "Lowercase":
		return []normStep{func(s string, _ bool) string { return hfLowercase(s) }}, nil
	case "Strip":
		l, r := c.boolean("strip_left", true), c.boolean("strip_right", true)
		return []normStep{func(s string, _ bool) string {
			if l {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if r {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}}, nil
	case "StripAccents":
		return []normStep{func(s string, _ bool) string {
			return mapRunes(s, func(b *strings.Builder, r rune) {
				// HF's combining-mark table is of Unicode 9.0 too.
				if !unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me) || unicode.Is(newerChars(), r) {
					b.WriteRune(r)
				}
			})
		}}, nil
	case "NFC":
		return []normStep{func(s string, _ bool) string { return hfNormalize(norm.NFC, s) }}, nil
	case "NFD":
		return []normStep{func(s string, _ bool) string { return hfNormalize(norm.NFD, s) }}, nil
	case "NFKC":
		return []normStep{func(s string, _ bool) string { return hfNormalize(norm.NFKC, s) }}, nil
	case "NFKD":
		return []normStep{func(s string, _ bool) string { return hfNormalize(norm.NFKD, s) }}, nil
	case "":
		return nil, fmt.Errorf("normalizer without a \"type\"")
	}
	return nil, fmt.Errorf("normalizer type %q not supported", c.typ())
}

// buildReplace reads a Replace normalizer. HF compiles a String pattern as
// an escaped regex and a Regex one as Oniguruma; both replace the leftmost
// non-overlapping matches. An empty pattern (which would match between
// every two characters) is refused rather than guessed at.
func buildReplace(c component) ([]normStep, error) {
	pat, isRe, err := c.pattern()
	if err != nil {
		return nil, fmt.Errorf("Replace: %w", err)
	}
	content, ok := c.str("content")
	if !ok {
		return nil, fmt.Errorf("Replace: want a string \"content\"")
	}
	if pat == "" {
		return nil, fmt.Errorf("Replace with an empty pattern not supported")
	}
	if !isRe {
		return []normStep{func(s string, _ bool) string { return strings.ReplaceAll(s, pat, content) }}, nil
	}
	sp, err := newSplitter(pat)
	if err != nil {
		return nil, fmt.Errorf("Replace regex %q: not a known pattern and not RE2-compatible: %v", pat, err)
	}
	return []normStep{func(s string, _ bool) string {
		var b strings.Builder
		sp.spans(s, func(p string, match bool) {
			if match {
				b.WriteString(content)
			} else {
				b.WriteString(p)
			}
		})
		return b.String()
	}}, nil
}

// hfLowercase is Rust's char::to_lowercase applied per character, as
// NormalizedString::lowercase does: Go's unicode.ToLower is the simple
// mapping, which differs only where the full mapping has more than one
// character (U+0130 only, in SpecialCasing's unconditional lowercase).
func hfLowercase(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	return mapRunes(s, func(b *strings.Builder, r rune) {
		switch {
		case r == 'İ':
			b.WriteString("i\u0307")
		case r >= 0x1c89:
			if l, ok := lowerNewer(r); ok {
				b.WriteRune(l)
				return
			}
			fallthrough
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	})
}

// lowerNewer holds the lowercase mappings of Unicode 16.0 and 17.0, which
// Rust's standard library (that HF tokenizers is built with) has and Go's
// unicode tables (Unicode 15.0) lack: U+1C89 Cyrillic TJE, the Latin
// Extended-D additions, Garay and Beria Erfe capitals.
func lowerNewer(r rune) (rune, bool) {
	switch {
	case r >= 0x10d50 && r <= 0x10d65: // Garay
		return r + 0x20, true
	case r >= 0x16ea0 && r <= 0x16eb8: // Beria Erfe
		return r + 0x1b, true
	}
	switch r {
	case 0x1c89:
		return 0x1c8a, true
	case 0xa7cb:
		return 0x0264, true
	case 0xa7dc:
		return 0x019b, true
	case 0xa7cc, 0xa7ce, 0xa7d2, 0xa7d4, 0xa7da:
		return r + 1, true
	}
	return 0, false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hfUnicodeVersion is the Unicode version of HF tokenizers' normalization
// tables (its unicode-normalization-alignments 0.1.12 crate).
const hfUnicodeVersion = "9.0.0"

// newerChars are the characters assigned after hfUnicodeVersion that Go's
// tables know: HF leaves them as they are (no decomposition, combining
// class 0), so they end every normalization run.
var newerChars = sync.OnceValue(func() *unicode.RangeTable {
	old, cur := rangetable.Assigned(hfUnicodeVersion), rangetable.Assigned(unicode.Version)
	if cur == nil {
		cur = rangetable.Assigned("15.0.0")
	}
	var rs []rune
	rangetable.Visit(cur, func(r rune) {
		if !unicode.Is(old, r) {
			rs = append(rs, r)
		}
	})
	return rangetable.New(rs...)
})

// hfNormalize is form f as HF tokenizers computes it: characters newer
// than its Unicode 9.0 tables pass through unchanged (splitting the text
// into runs normalized apart), and no U+034F is inserted into runs of more
// than 30 combining marks (Go's norm follows the Stream-Safe Text Format;
// HF does not), for which hfNormalizeLong does the work.
func hfNormalize(f norm.Form, s string) string {
	// A text Go finds normal is normal for HF too: its runs between newer
	// characters are substrings of a normal text, and so normal.
	if isASCII(s) || f.IsNormalString(s) {
		return s
	}
	newer := newerChars()
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r >= 0x0370 && (r == utf8.RuneError && n == 1 || unicode.Is(newer, r)) {
			b.WriteString(hfNormalizeRun(f, s[start:i]))
			b.WriteString(s[i : i+n])
			start = i + n
		}
		i += n
	}
	if start == 0 {
		return hfNormalizeRun(f, s)
	}
	b.WriteString(hfNormalizeRun(f, s[start:]))
	return b.String()
}

func hfNormalizeRun(f norm.Form, s string) string {
	out := f.String(s)
	if strings.Count(out, "\u034f") > strings.Count(s, "\u034f") {
		return hfNormalizeLong(f, s)
	}
	return out
}

// hfNormalizeLong normalizes s by UAX #15's algorithm without the
// stream-safe limit: full decomposition of each character, canonical
// ordering by combining class, then (C forms) canonical composition, with
// Go's norm supplying the per-character data. Only texts with more than
// 30 marks in a row come here.
func hfNormalizeLong(f norm.Form, s string) string {
	dec := norm.NFD
	if f == norm.NFKC || f == norm.NFKD {
		dec = norm.NFKD
	}
	type ch struct {
		r   rune
		ccc uint8
	}
	var cs []ch
	for _, r := range s {
		for _, d := range dec.String(string(r)) {
			cs = append(cs, ch{d, norm.NFD.PropertiesString(string(d)).CCC()})
		}
	}
	for i := 0; i < len(cs); {
		if cs[i].ccc == 0 {
			i++
			continue
		}
		j := i
		for j < len(cs) && cs[j].ccc != 0 {
			j++
		}
		run := cs[i:j]
		sort.SliceStable(run, func(a, b int) bool { return run[a].ccc < run[b].ccc })
		i = j
	}
	if f == norm.NFC || f == norm.NFKC {
		out := cs[:0]
		starter, last := -1, -1 // last: class of the character before c after the starter (-1: none)
		for _, c := range cs {
			if starter >= 0 && (last == -1 || last < int(c.ccc)) {
				if p := []rune(norm.NFC.String(string([]rune{out[starter].r, c.r}))); len(p) == 1 {
					out[starter].r = p[0]
					continue
				}
			}
			if c.ccc == 0 {
				starter, last = len(out), -1
			} else {
				last = int(c.ccc)
			}
			out = append(out, c)
		}
		cs = out
	}
	var b strings.Builder
	for _, c := range cs {
		b.WriteRune(c.r)
	}
	return b.String()
}

// mapRunes writes f's output for each character of s; bytes that are not
// UTF-8 pass through unchanged (strings.Map would make them U+FFFD).
func mapRunes(s string, f func(b *strings.Builder, r rune)) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteByte(s[i])
		} else {
			f(&b, r)
		}
		i += n
	}
	return b.String()
}
