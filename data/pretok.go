package data

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenizers split text into words before BPE runs on each word. The
// GPT-2 and Llama-3 split patterns use the look-ahead `\s+(?!\S)`, which Go's
// regexp cannot express, so both are hand-written scanners that reproduce the
// leftmost-first semantics of the regexes alternative by alternative. They are
// checked against Python's `regex` module in pretok_test.go.

// Known split patterns, exactly as they appear in tokenizer.json files.
const (
	// GPT2Pattern is the ByteLevel pre-tokenizer's built-in regex (GPT-2, RoBERTa, ...).
	GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// Llama3Pattern is Llama-3's (tiktoken cl100k-style) split regex.
	Llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen2Pattern is Llama3Pattern with single digits.
	Qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitter splits text into pieces; every byte of text lands in exactly one
// piece. spans also says which pieces are matches of the pattern and which
// are the gaps between them (for HF Split behaviours other than Isolated).
type splitter interface {
	split(text string, emit func(piece string))
	spans(text string, emit func(piece string, match bool))
}

// newSplitter returns a scanner for a known pattern, or a Go regexp for any
// other pattern that Go can compile (no look-around); the pieces are the
// matches and the gaps between them (HF "Isolated" behaviour).
func newSplitter(pattern string) (splitter, error) {
	switch pattern {
	case GPT2Pattern:
		return scanSplitter{style: styleGPT2}, nil
	case Llama3Pattern:
		return scanSplitter{style: styleLlama3, maxDigits: 3}, nil
	case Qwen2Pattern:
		return scanSplitter{style: styleLlama3, maxDigits: 1}, nil
	}
	// Other GPT-style patterns (GPT-4o, DeepSeek, ...) share the tail
	// `\s+(?!\S)|\s+`: run the head with Go's regexp (leftmost-first, as
	// a backtracking engine prefers) anchored at each position and the tail
	// by hand.
	if head, ok := strings.CutSuffix(pattern, wsTailPattern); ok {
		head = strings.TrimSuffix(head, "|")
		re, err := regexp.Compile(`^(?:` + unicodeClasses(head) + `)`)
		if err != nil {
			return nil, err
		}
		return headTailSplitter{re}, nil
	}
	re, err := regexp.Compile(unicodeClasses(pattern))
	if err != nil {
		return nil, err
	}
	return regexSplitter{re}, nil
}

const wsTailPattern = `\s+(?!\S)|\s+`

// whiteSpace is Unicode White_Space (what \s means in Oniguruma and
// Python's regex, and what unicode.IsSpace reports) as class items; Go's
// own \s is ASCII only.
const whiteSpace = `\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`

// unicodeClasses rewrites \s, \S and \d to their Unicode meanings for Go's
// regexp. \S inside a bracket class cannot be expressed and is left as is.
func unicodeClasses(p string) string {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			i++
			switch p[i] {
			case 's':
				if inClass {
					b.WriteString(whiteSpace)
				} else {
					b.WriteString("[" + whiteSpace + "]")
				}
			case 'S':
				if inClass {
					b.WriteString(`\S`)
				} else {
					b.WriteString("[^" + whiteSpace + "]")
				}
			case 'd':
				b.WriteString(`\p{Nd}`)
			default:
				b.WriteByte('\\')
				b.WriteByte(p[i])
			}
			continue
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		case c == ']' && inClass:
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// headTailSplitter runs `head|\s+(?!\S)|\s+`: at each position the
// anchored head regexp first, then the whitespace tail; characters neither
// matches are emitted as gap pieces (HF's Isolated behaviour keeps them).
type headTailSplitter struct{ head *regexp.Regexp }

func (s headTailSplitter) split(text string, emit func(string)) {
	s.spans(text, func(p string, _ bool) { emit(p) })
}

func (s headTailSplitter) spans(text string, emit func(string, bool)) {
	gap := -1
	flush := func(i int) {
		if gap >= 0 {
			emit(text[gap:i], false)
			gap = -1
		}
	}
	for i := 0; i < len(text); {
		if loc := s.head.FindStringIndex(text[i:]); loc != nil && loc[1] > 0 {
			flush(i)
			emit(text[i:i+loc[1]], true)
			i += loc[1]
			continue
		}
		if n := whitespaceTail(text, i); n > 0 {
			flush(i)
			emit(text[i:i+n], true)
			i += n
			continue
		}
		if gap < 0 {
			gap = i
		}
		_, w := utf8.DecodeRuneInString(text[i:])
		i += w
	}
	flush(len(text))
}

type regexSplitter struct{ re *regexp.Regexp }

func (s regexSplitter) split(text string, emit func(string)) {
	s.spans(text, func(p string, _ bool) { emit(p) })
}

func (s regexSplitter) spans(text string, emit func(string, bool)) {
	last := 0
	for _, m := range s.re.FindAllStringIndex(text, -1) {
		if m[0] == m[1] {
			continue
		}
		if m[0] > last {
			emit(text[last:m[0]], false)
		}
		emit(text[m[0]:m[1]], true)
		last = m[1]
	}
	if last < len(text) {
		emit(text[last:], false)
	}
}

type splitStyle int

const (
	styleGPT2 splitStyle = iota
	styleLlama3
)

type scanSplitter struct {
	style     splitStyle
	maxDigits int // Llama-3: \p{N}{1,maxDigits}
}

// Character classes as the regexes see them. \s is Unicode White_Space,
// which is what unicode.IsSpace reports.
func isL(r rune) bool  { return unicode.IsLetter(r) }
func isN(r rune) bool  { return unicode.IsNumber(r) }
func isS(r rune) bool  { return unicode.IsSpace(r) }
func isNL(r rune) bool { return r == '\r' || r == '\n' }

// isPunct is [^\s\p{L}\p{N}].
func isPunct(r rune) bool { return !isS(r) && !isL(r) && !isN(r) }

// spans: the GPT-2/Llama-3 patterns match every character, so there are no gaps.
func (s scanSplitter) spans(text string, emit func(string, bool)) {
	s.split(text, func(p string) { emit(p, true) })
}

func (s scanSplitter) split(text string, emit func(string)) {
	for i := 0; i < len(text); {
		n := s.match(text, i)
		if n <= 0 { // cannot happen: \s+ or a class always matches one rune
			_, n = utf8.DecodeRuneInString(text[i:])
		}
		emit(text[i : i+n])
		i += n
	}
}

// runeAt decodes the rune at i; invalid bytes decode as utf8.RuneError,
// which is a symbol (\p{So}), i.e. punctuation for these patterns.
func runeAt(text string, i int) (rune, int) {
	if i >= len(text) {
		return -1, 0
	}
	r, w := utf8.DecodeRuneInString(text[i:])
	return r, w
}

// spanWhile returns the byte length of the longest run at i of runes with f.
func spanWhile(text string, i int, f func(rune) bool) int {
	j := i
	for j < len(text) {
		r, w := utf8.DecodeRuneInString(text[j:])
		if !f(r) {
			break
		}
		j += w
	}
	return j - i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d (optionally case-insensitively).
func contraction(text string, i int, fold bool) int {
	if text[i] != '\'' {
		return 0
	}
	lower := func(k int) byte {
		if k >= len(text) {
			return 0
		}
		c := text[k]
		if fold && c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		return c
	}
	c1, c2 := lower(i+1), lower(i+2)
	switch {
	case c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd':
		return 2
	case (c1 == 'r' || c1 == 'v') && c2 == 'e':
		return 3
	case c1 == 'l' && c2 == 'l':
		return 3
	}
	if fold && i+3 <= len(text) && text[i+1:i+3] == "\u017f" { // ſ folds to s
		return 3
	}
	return 0
}

// whitespace handles the shared tail `\s+(?!\S)|\s+`: a run of whitespace
// followed by a non-space gives its last rune to the next piece, unless
// the run is that single rune.
func whitespaceTail(text string, i int) int {
	n := spanWhile(text, i, isS)
	if n == 0 {
		return 0
	}
	if i+n == len(text) {
		return n
	}
	// Back off one rune so that (?!\S) holds.
	_, w := utf8.DecodeLastRuneInString(text[i : i+n])
	if n-w > 0 {
		return n - w
	}
	return n // \s+ alone
}

func (s scanSplitter) match(text string, i int) int {
	r, w := runeAt(text, i)
	if s.style == styleGPT2 {
		if n := contraction(text, i, false); n > 0 {
			return n
		}
		// ` ?X+` for X in L, N, punct.
		start, r2, w2 := i, r, w
		if r == ' ' {
			r2, w2 = runeAt(text, i+1)
			start = i + 1
		}
		if w2 > 0 {
			for _, f := range []func(rune) bool{isL, isN, isPunct} {
				if f(r2) {
					return start - i + spanWhile(text, start, f)
				}
			}
		}
		return whitespaceTail(text, i)
	}

	// Llama-3 / Qwen2.
	if n := contraction(text, i, true); n > 0 {
		return n
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return spanWhile(text, i, isL)
	}
	if !isNL(r) && !isN(r) {
		if r2, _ := runeAt(text, i+w); r2 >= 0 && isL(r2) {
			return w + spanWhile(text, i+w, isL)
		}
	}
	// \p{N}{1,k}
	if isN(r) {
		j, k := i, 0
		for j < len(text) && k < s.maxDigits {
			r3, w3 := utf8.DecodeRuneInString(text[j:])
			if !isN(r3) {
				break
			}
			j += w3
			k++
		}
		return j - i
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	{
		start, r2 := i, r
		if r == ' ' {
			r2, _ = runeAt(text, i+1)
			start = i + 1
		}
		if r2 >= 0 && isPunct(r2) {
			j := start + spanWhile(text, start, isPunct)
			j += spanWhile(text, j, isNL)
			return j - i
		}
	}
	// \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
	if n := spanWhile(text, i, isS); n > 0 {
		last := -1
		for j := i; j < i+n; {
			r3, w3 := utf8.DecodeRuneInString(text[j:])
			if isNL(r3) {
				last = j + w3
			}
			j += w3
		}
		if last > 0 {
			return last - i
		}
	}
	return whitespaceTail(text, i)
}

// Byte-level BPE maps every byte to a printable rune so that vocabularies
// are valid JSON strings (GPT-2's bytes_to_unicode).
var byteToRune [256]rune
var runeToByte map[rune]byte

func init() {
	runeToByte = make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
	}
}

// byteLevelEncode maps raw bytes to their byte-level runes.
func byteLevelEncode(s string) string {
	buf := make([]byte, 0, len(s)*2)
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// byteLevelDecode inverts byteLevelEncode; runes outside the map are kept
// as their UTF-8 (HF does the same for tokens that are not byte-level).
func byteLevelDecode(s string, dst []byte) []byte {
	for _, r := range s {
		if b, ok := runeToByte[r]; ok {
			dst = append(dst, b)
		} else {
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

// lossyUTF8 replaces invalid UTF-8 like Rust's String::from_utf8_lossy
// (and Python's errors="replace"), which HF's ByteLevel decoder uses: each
// maximal subpart of an ill-formed sequence becomes one U+FFFD, so a
// truncated 3-byte character is one replacement, not two.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			out = append(out, b[i:i+w]...)
			i += w
			continue
		}
		out = append(out, "\uFFFD"...)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart is the length of the ill-formed prefix of b to replace:
// the lead byte and the continuation bytes that could still have begun a
// valid character (Unicode §3.9, table 3-7), at least 1.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 && (x < lo || x > hi) || k > 0 && (x < 0x80 || x > 0xBF) {
			break
		}
		n++
	}
	return n
}
