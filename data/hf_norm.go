package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalizers of a tokenizer.json, with the semantics of Hugging Face
// tokenizers' normalizers (tokenizers/src/normalizers/ and
// NormalizedString): each step maps the whole text between two added
// tokens, in the order the Sequence gives.
//
//   - NFC, NFD, NFKC, NFKD: the Unicode normalization forms.
//   - Lowercase: Rust's char::to_lowercase per character, the full mapping:
//     U+0130 (İ) becomes "i̇" (two characters), the rest as unicode.ToLower;
//     no context (a final Σ is σ).
//   - Strip: Unicode White_Space (Rust's char::is_whitespace) off the left
//     and/or right (strip_left, strip_right; both default true).
//   - Replace: every leftmost non-overlapping match of a String (literal)
//     or Regex pattern becomes content.
//   - Prepend: the prefix, only on a non-empty text.
//   - StripAccents: removes combining marks (categories Mn, Mc, Me).
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
		if _, ok := c["normalizers"]; !ok {
			return nil, fmt.Errorf("Sequence without \"normalizers\"")
		}
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
				if !unicode.In(r, unicode.Mn, unicode.Mc, unicode.Me) {
					b.WriteRune(r)
				}
			})
		}}, nil
	case "NFC":
		return []normStep{func(s string, _ bool) string { return norm.NFC.String(s) }}, nil
	case "NFD":
		return []normStep{func(s string, _ bool) string { return norm.NFD.String(s) }}, nil
	case "NFKC":
		return []normStep{func(s string, _ bool) string { return norm.NFKC.String(s) }}, nil
	case "NFKD":
		return []normStep{func(s string, _ bool) string { return norm.NFKD.String(s) }}, nil
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
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	return mapRunes(s, func(b *strings.Builder, r rune) {
		if r == 'İ' {
			b.WriteString("i\u0307")
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
	})
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
