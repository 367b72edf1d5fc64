package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// HFTokenizer is a Hugging Face tokenizer.json BPE tokenizer: byte-level
// (GPT-2, Llama-3, Qwen2 style) or SentencePiece-style (Llama-2, Mistral:
// Metaspace or Prepend+Replace normalizer, byte_fallback). It implements
// Tokenizer.
//
// Supported components: normalizers Sequence, Prepend, Replace, Lowercase,
// Strip, StripAccents and NFC/NFKC/NFD/NFKD (hf_norm.go); pre-tokenizers Sequence, ByteLevel, Split (every
// behaviour, invert), Metaspace, Digits, Punctuation, Whitespace,
// WhitespaceSplit; model BPE (merges as "a b" strings or ["a","b"] pairs,
// byte_fallback, fuse_unk, ignore_merges, unk_token); decoders ByteLevel,
// Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence; post-processors
// TemplateProcessing, ByteLevel, Sequence, RobertaProcessing, BertProcessing.
type HFTokenizer struct {
	vocab    map[string]int
	idTok    []string // id → token string (model vocab and added tokens)
	merges   bpeMerges
	unkID    int
	byteFB   bool
	byteIDs  [256]int // <0xXX> ids when byteFB
	fuseUnk  bool
	ignoreMg bool

	norm   []normStep
	pre    []preStep
	dec    []decStep
	added  []addedTok // all added tokens, sorted by content length, longest first
	isSpec map[int]bool
	// As HF's AddedVocabulary: tokens with normalized=false are split off
	// the raw text, the rest is normalized, then tokens with
	// normalized=true (matched by their normalized content) are split off.
	rawAdded, normAdded addedSet

	prefixIDs, suffixIDs []int // post-processor template around a single sequence

	// fast: the pre-tokenizer is a split followed by the byte map (GPT-2, Llama-3 layouts), so raw pieces can key the word cache
	// and no intermediate word lists are built.
	fast      bool
	fastSplit splitter // nil: the whole segment is one word

	bos, eos, pad, unk int
	identity           string
	warnings           []string
	cache              wordCache
}

type addedTok struct {
	content    string
	id         int
	special    bool
	lstrip     bool
	rstrip     bool
	singleWord bool
	normalized bool
}

// Tokenizer JSON schema (only the parts we read).
type hfJSON struct {
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type                    string          `json:"type"`
		Vocab                   json.RawMessage `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		FuseUnk                 bool            `json:"fuse_unk"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		Dropout                 *float64        `json:"dropout"`
	} `json:"model"`
}

// component is the generic {"type": ..., ...} object of a pipeline stage.
type component map[string]json.RawMessage

func (c component) typ() string { var s string; _ = json.Unmarshal(c["type"], &s); return s }
func (c component) str(k string) (string, bool) {
	var s string
	if v, ok := c[k]; ok && json.Unmarshal(v, &s) == nil {
		return s, true
	}
	return "", false
}
func (c component) boolean(k string, def bool) bool {
	var b bool
	if v, ok := c[k]; ok && json.Unmarshal(v, &b) == nil {
		return b
	}
	return def
}

// metaspace is a Metaspace pre-tokenizer's or decoder's replacement
// character (default ▁) and prepend scheme; configs older than
// prepend_scheme give add_prefix_space (default true: "always").
func (c component) metaspace() (repl, scheme string) {
	repl, ok := c.str("replacement")
	if !ok {
		repl = "▁"
	}
	if scheme, ok = c.str("prepend_scheme"); !ok {
		scheme = "never"
		if c.boolean("add_prefix_space", true) {
			scheme = "always"
		}
	}
	return repl, scheme
}

func (c component) list(k string) ([]component, error) {
	var l []component
	if v, ok := c[k]; ok {
		if err := json.Unmarshal(v, &l); err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
	}
	return l, nil
}

// pattern reads {"String": s} or {"Regex": r}.
func (c component) pattern() (s string, isRegex bool, err error) {
	var p struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	}
	if err := json.Unmarshal(c["pattern"], &p); err != nil {
		return "", false, fmt.Errorf("pattern: %v", err)
	}
	switch {
	case p.String != nil:
		return *p.String, false, nil
	case p.Regex != nil:
		return *p.Regex, true, nil
	}
	return "", false, fmt.Errorf("pattern has neither String nor Regex")
}

// preStep splits each word further; first marks the first segment of the text.
type preStep func(words []string, first bool) []string

// decStep transforms the token strings.
type decStep func(toks []string) []string

// LoadHFTokenizer reads a tokenizer.json file. A tokenizer_config.json beside
// it, when present, names the BOS/EOS/PAD/UNK tokens.
func LoadHFTokenizer(path string) (*HFTokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseHFTokenizer(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	if cb, err := os.ReadFile(cfgPath); err == nil {
		if err := t.applyConfig(cb); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
	}
	return t, nil
}

// ParseHFTokenizer parses the bytes of a tokenizer.json.
func ParseHFTokenizer(b []byte) (*HFTokenizer, error) {
	var j hfJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %v", err)
	}
	if j.Model.Type == "" && len(j.Model.Vocab) == 0 {
		return nil, fmt.Errorf("no \"model\" with a vocabulary: not a tokenizer.json (tokenizer_config.json names tokens but holds no vocabulary)")
	}
	if j.Model.Type != "BPE" && !(j.Model.Type == "" && len(j.Model.Merges) > 0) {
		return nil, fmt.Errorf("model type %q not supported (only BPE)", j.Model.Type)
	}
	if j.Model.ContinuingSubwordPrefix != nil && *j.Model.ContinuingSubwordPrefix != "" ||
		j.Model.EndOfWordSuffix != nil && *j.Model.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("BPE continuing_subword_prefix/end_of_word_suffix not supported")
	}
	t := &HFTokenizer{unkID: -1, bos: -1, eos: -1, pad: -1, unk: -1, isSpec: map[int]bool{}}
	if err := json.Unmarshal(j.Model.Vocab, &t.vocab); err != nil || t.vocab == nil {
		return nil, fmt.Errorf("model.vocab: want an object of token → id: %v", err)
	}
	maxID := -1
	for tok, id := range t.vocab {
		if id < 0 || id > 1<<26 {
			return nil, fmt.Errorf("model.vocab: token %q has id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	for _, a := range j.AddedTokens {
		if a.ID < 0 || a.ID > 1<<26 {
			return nil, fmt.Errorf("added_tokens: %q has id %d", a.Content, a.ID)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added_tokens: id %d has empty content", a.ID)
		}
		maxID = max(maxID, a.ID)
	}
	if n := len(t.vocab) + len(j.AddedTokens); maxID >= 2*n+1024 {
		return nil, fmt.Errorf("ids are sparse: largest id %d for %d tokens", maxID, n)
	}
	// One string per id: with two, Decode would pick one by map order and
	// the same ids would decode differently from run to run.
	t.idTok = make([]string, maxID+1)
	toks := make([]string, 0, len(t.vocab))
	for tok := range t.vocab {
		toks = append(toks, tok)
	}
	sort.Strings(toks)
	inVocab := make([]bool, maxID+1)
	for _, tok := range toks {
		id := t.vocab[tok]
		if inVocab[id] {
			return nil, fmt.Errorf("model.vocab: id %d is given to both %q and %q", id, t.idTok[id], tok)
		}
		t.idTok[id], inVocab[id] = tok, true
	}
	addedAt := map[int]string{}
	for _, a := range j.AddedTokens {
		if prev, ok := addedAt[a.ID]; ok && prev != a.Content {
			return nil, fmt.Errorf("added_tokens: id %d is given to both %q and %q", a.ID, prev, a.Content)
		}
		if inVocab[a.ID] && t.idTok[a.ID] != a.Content {
			return nil, fmt.Errorf("added_tokens: id %d is given to both %q (model.vocab) and %q", a.ID, t.idTok[a.ID], a.Content)
		}
		addedAt[a.ID] = a.Content
	}
	for _, a := range j.AddedTokens {
		t.idTok[a.ID] = a.Content
		t.added = append(t.added, addedTok{content: a.Content, id: a.ID, special: a.Special,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord, normalized: a.Normalized})
		if a.Special {
			t.isSpec[a.ID] = true
		}
	}
	sort.SliceStable(t.added, func(i, k int) bool { return len(t.added[i].content) > len(t.added[k].content) })

	merges, err := parseMerges(j.Model.Merges)
	if err != nil {
		return nil, err
	}
	t.merges = make(bpeMerges, len(merges))
	for rank, m := range merges {
		a, ok1 := t.vocab[m[0]]
		b, ok2 := t.vocab[m[1]]
		c, ok3 := t.vocab[m[0]+m[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("model.merges[%d] %q %q: token not in vocab", rank, m[0], m[1])
		}
		k := pairKey(a, b)
		if _, dup := t.merges[k]; !dup {
			t.merges[k] = bpeMerge{rank: int32(rank), id: int32(c)}
		}
	}
	if j.Model.UnkToken != nil {
		id, ok := t.vocab[*j.Model.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model.unk_token %q not in vocab", *j.Model.UnkToken)
		}
		t.unkID, t.unk = id, id
	}
	t.fuseUnk = j.Model.FuseUnk
	t.ignoreMg = j.Model.IgnoreMerges
	if j.Model.ByteFallback {
		t.byteFB = true
		for b := 0; b < 256; b++ {
			id, ok := t.vocab[fmt.Sprintf("<0x%02X>", b)]
			if !ok {
				return nil, fmt.Errorf("model.byte_fallback set but <0x%02X> not in vocab", b)
			}
			t.byteIDs[b] = id
		}
	}

	if t.norm, err = buildNormalizer(j.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	var raw, normed []addedTok
	for _, a := range t.added {
		if !a.normalized {
			raw = append(raw, a)
			continue
		}
		a.content = t.normalize(a.content, false)
		if a.content != "" { // a token the normalizer erases can never match
			normed = append(normed, a)
		}
	}
	t.rawAdded, t.normAdded = newAddedSet(raw), newAddedSet(normed)
	if t.pre, err = buildPreTokenizer(j.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	if t.dec, err = buildDecoder(j.Decoder); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	t.fastSplit, t.fast = fastByteLevel(j.PreTokenizer)
	if err := t.buildPostProcessor(j.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	t.guessSpecials(true)
	t.identity = "hf-bpe:" + shortHash(b)
	return t, nil
}

// Warnings lists what the tokenizer files say that is not used (a
// tokenizer_config.json special token missing from the vocabulary), for
// tools to show; empty when everything applies.
func (t *HFTokenizer) Warnings() []string { return t.warnings }

func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("model.merges[%d] %q: want two tokens separated by one space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("model.merges: want [\"a b\", ...] or [[\"a\",\"b\"], ...]: %v", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("model.merges[%d]: want 2 tokens, got %d", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// buildSequence builds each member of a Sequence component (normalizers,
// pre-tokenizers, decoders, processors) and concatenates their steps.
func buildSequence[T any](c component, key string, build func(json.RawMessage) ([]T, error)) ([]T, error) {
	var subs []json.RawMessage
	if _, ok := c[key]; !ok {
		return nil, fmt.Errorf("Sequence without %q", key)
	}
	if err := json.Unmarshal(c[key], &subs); err != nil {
		return nil, fmt.Errorf("Sequence.%s: %v", key, err)
	}
	var out []T
	for _, s := range subs {
		st, err := build(s)
		if err != nil {
			return nil, err
		}
		out = append(out, st...)
	}
	return out, nil
}

// replacement reads a Replace decoder: a plain string pattern and its
// content; Regex patterns are not supported (the Replace normalizer has
// its own reader, buildReplace, which takes them).
func (c component) replacement() (pat, content string, err error) {
	pat, isRe, err := c.pattern()
	if err != nil {
		return "", "", err
	}
	if isRe {
		return "", "", fmt.Errorf("Replace with a Regex pattern not supported")
	}
	content, _ = c.str("content")
	return pat, content, nil
}

func parseComponent(raw json.RawMessage) (component, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	return c, nil
}

func splitStep(sp splitter, behavior string, invert bool) preStep {
	return func(words []string, _ bool) []string {
		var out []string
		for _, w := range words {
			applyBehavior(sp, behavior, invert, w, func(p string) { out = append(out, p) })
		}
		return out
	}
}

func buildPreTokenizer(raw json.RawMessage) ([]preStep, error) {
	c, err := parseComponent(raw)
	if c == nil || err != nil {
		return nil, err
	}
	switch c.typ() {
	case "Sequence":
		return buildSequence(c, "pretokenizers", buildPreTokenizer)
	case "ByteLevel":
		prefix := c.boolean("add_prefix_space", true)
		var sp splitter
		if c.boolean("use_regex", true) {
			sp, _ = newSplitter(GPT2Pattern)
		}
		// HF prepends the space to every piece that reaches this stage
		// (each stretch between added tokens, or each Split piece).
		return []preStep{func(words []string, _ bool) []string {
			var out []string
			for _, w := range words {
				if prefix && !strings.HasPrefix(w, " ") {
					w = " " + w
				}
				if sp == nil {
					out = append(out, byteLevelEncode(w))
					continue
				}
				sp.split(w, func(p string) { out = append(out, byteLevelEncode(p)) })
			}
			return out
		}}, nil
	case "Split":
		pat, isRe, err := c.pattern()
		if err != nil {
			return nil, err
		}
		beh, _ := c.str("behavior")
		switch beh {
		case "Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous":
		default:
			return nil, fmt.Errorf("Split behavior %q not supported", beh)
		}
		invert := c.boolean("invert", false)
		var sp splitter
		if isRe {
			if sp, err = newSplitter(pat); err != nil {
				return nil, fmt.Errorf("Split regex %q: not a known pattern and not RE2-compatible: %v", pat, err)
			}
		} else {
			sp = stringSplitter(pat)
		}
		return []preStep{splitStep(sp, beh, invert)}, nil
	case "Punctuation":
		beh, ok := c.str("behavior")
		if !ok {
			beh = "Isolated"
		}
		return []preStep{splitStep(punctSplitter{}, beh, false)}, nil
	case "WhitespaceSplit":
		return []preStep{func(words []string, _ bool) []string {
			var out []string
			for _, w := range words {
				out = append(out, strings.FieldsFunc(w, unicode.IsSpace)...)
			}
			return out
		}}, nil
	case "Whitespace":
		// \w+|[^\w\s]+ with Unicode \w (letters, marks, digits, connectors).
		sp, _ := newSplitter(`[\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}]+|[^\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\s]+`)
		return []preStep{splitStep(sp, "Removed", true)}, nil
	case "Metaspace":
		repl, scheme := c.metaspace()
		if repl == "" {
			return nil, fmt.Errorf("Metaspace replacement is empty")
		}
		split := c.boolean("split", true)
		return []preStep{func(words []string, first bool) []string {
			var out []string
			for _, w := range words {
				w = strings.ReplaceAll(w, " ", repl)
				if (scheme == "always" || scheme == "first" && first) && !strings.HasPrefix(w, repl) {
					w = repl + w
				}
				first = false
				if !split {
					out = append(out, w)
					continue
				}
				// Each replacement character starts a new word.
				start := 0
				for i := len(repl); i <= len(w)-len(repl); {
					if strings.HasPrefix(w[i:], repl) {
						if i > start {
							out = append(out, w[start:i])
						}
						start = i
						i += len(repl)
					} else {
						i++
					}
				}
				if start < len(w) {
					out = append(out, w[start:])
				}
			}
			return out
		}}, nil
	case "Digits":
		individual := c.boolean("individual_digits", false)
		return []preStep{func(words []string, _ bool) []string {
			var out []string
			for _, w := range words {
				i := 0
				for i < len(w) {
					j := i
					d := w[i] >= '0' && w[i] <= '9'
					for j < len(w) && (w[j] >= '0' && w[j] <= '9') == d {
						j++
						if d && individual {
							break
						}
					}
					out = append(out, w[i:j])
					i = j
				}
			}
			return out
		}}, nil
	}
	return nil, fmt.Errorf("pre-tokenizer type %q not supported", c.typ())
}

type stringSplitter string

func (s stringSplitter) split(text string, emit func(string)) {
	s.spans(text, func(p string, _ bool) { emit(p) })
}

func (s stringSplitter) spans(text string, emit func(string, bool)) {
	if s == "" {
		if text != "" {
			emit(text, false)
		}
		return
	}
	for {
		i := strings.Index(text, string(s))
		if i < 0 {
			break
		}
		if i > 0 {
			emit(text[:i], false)
		}
		emit(text[i:i+len(s)], true)
		text = text[i+len(s):]
	}
	if text != "" {
		emit(text, false)
	}
}

// applyBehavior turns a splitter's spans into pieces the way HF's
// SplitDelimiterBehavior does, e.g. for "the-final--countdown" split on "-":
// Removed [the final countdown], Isolated [the - final - - countdown],
// MergedWithPrevious [the- final- - countdown], MergedWithNext
// [the -final - -countdown], Contiguous [the - final -- countdown].
// invert swaps the roles of matches and gaps.
func applyBehavior(sp splitter, behavior string, invert bool, text string, emit func(string)) {
	var pend string // MergedWithNext: a match waiting for the next piece; Contiguous: a run of matches
	havePend := false
	lastGap := false // MergedWithPrevious: the last piece emitted is an unmerged gap
	var last string
	haveLast := false
	flushLast := func() {
		if haveLast {
			emit(last)
			haveLast = false
		}
	}
	sp.spans(text, func(p string, match bool) {
		if invert {
			match = !match
		}
		switch behavior {
		case "Removed":
			if !match {
				emit(p)
			}
		case "MergedWithPrevious":
			if match && haveLast && lastGap {
				last += p
				lastGap = false
				return
			}
			flushLast()
			last, haveLast, lastGap = p, true, !match
		case "MergedWithNext":
			if match {
				if havePend {
					emit(pend)
				}
				pend, havePend = p, true
				return
			}
			if havePend {
				emit(pend + p)
				havePend = false
				return
			}
			emit(p)
		case "Contiguous":
			if match {
				pend += p
				havePend = true
				return
			}
			if havePend {
				emit(pend)
				pend, havePend = "", false
			}
			emit(p)
		default: // Isolated
			emit(p)
		}
	})
	flushLast()
	if havePend {
		emit(pend)
	}
}

// punctSplitter isolates every punctuation character (HF's Punctuation
// pre-tokenizer: ASCII punctuation or Unicode category P).
type punctSplitter struct{}

func isPunctuation(r rune) bool {
	return r < 128 && unicode.IsPunct(r) || r < 128 && unicode.IsSymbol(r) || unicode.In(r, unicode.P)
}

func (punctSplitter) split(text string, emit func(string)) {
	punctSplitter{}.spans(text, func(p string, _ bool) { emit(p) })
}

func (punctSplitter) spans(text string, emit func(string, bool)) {
	start := 0
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		if isPunctuation(r) {
			if i > start {
				emit(text[start:i], false)
			}
			emit(text[i:i+w], true)
			start = i + w
		}
		i += w
	}
	if start < len(text) {
		emit(text[start:], false)
	}
}

func buildDecoder(raw json.RawMessage) ([]decStep, error) {
	c, err := parseComponent(raw)
	if c == nil || err != nil {
		return nil, err
	}
	switch c.typ() {
	case "Sequence":
		return buildSequence(c, "decoders", buildDecoder)
	case "ByteLevel":
		return []decStep{func(toks []string) []string {
			var buf []byte
			for _, t := range toks {
				buf = byteLevelDecode(t, buf)
			}
			return []string{lossyUTF8(buf)}
		}}, nil
	case "Replace":
		pat, content, err := c.replacement()
		if err != nil {
			return nil, err
		}
		return []decStep{func(toks []string) []string {
			for i := range toks {
				toks[i] = strings.ReplaceAll(toks[i], pat, content)
			}
			return toks
		}}, nil
	case "ByteFallback":
		return []decStep{decodeByteFallback}, nil
	case "Fuse":
		return []decStep{func(toks []string) []string { return []string{strings.Join(toks, "")} }}, nil
	case "Strip":
		content, _ := c.str("content")
		var start, stop int
		_ = json.Unmarshal(c["start"], &start)
		_ = json.Unmarshal(c["stop"], &stop)
		cr, _ := utf8.DecodeRuneInString(content)
		return []decStep{func(toks []string) []string {
			for i, t := range toks {
				rs := []rune(t)
				a, b := 0, len(rs)
				for a < start && a < len(rs) && rs[a] == cr {
					a++
				}
				for k := 0; k < stop && b > a && rs[b-1] == cr; k++ {
					b--
				}
				toks[i] = string(rs[a:b])
			}
			return toks
		}}, nil
	case "Metaspace":
		repl, scheme := c.metaspace()
		// As HF does: every replacement in the first token vanishes (not
		// just a leading one) unless the prepend scheme is "never".
		return []decStep{func(toks []string) []string {
			for i := range toks {
				if i == 0 && scheme != "never" {
					toks[i] = strings.ReplaceAll(toks[i], repl, "")
				} else {
					toks[i] = strings.ReplaceAll(toks[i], repl, " ")
				}
			}
			return toks
		}}, nil
	}
	return nil, fmt.Errorf("decoder type %q not supported", c.typ())
}

// decodeByteFallback turns runs of <0xXX> tokens back into bytes; invalid
// UTF-8 becomes U+FFFD per byte, as HF does.
func decodeByteFallback(toks []string) []string {
	var out []string
	var pend []byte
	flush := func() {
		if len(pend) == 0 {
			return
		}
		if utf8.Valid(pend) {
			out = append(out, string(pend))
		} else {
			for range pend {
				out = append(out, "\uFFFD")
			}
		}
		pend = pend[:0]
	}
	for _, t := range toks {
		if b, ok := parseByteToken(t); ok {
			pend = append(pend, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

func (t *HFTokenizer) buildPostProcessor(raw json.RawMessage) error {
	c, err := parseComponent(raw)
	if c == nil || err != nil {
		return err
	}
	switch c.typ() {
	case "Sequence":
		var subs []json.RawMessage
		if err := json.Unmarshal(c["processors"], &subs); err != nil {
			return fmt.Errorf("Sequence.processors: %v", err)
		}
		for _, s := range subs {
			if err := t.buildPostProcessor(s); err != nil {
				return err
			}
		}
	case "ByteLevel":
	case "TemplateProcessing":
		var single []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		}
		if err := json.Unmarshal(c["single"], &single); err != nil {
			return fmt.Errorf("TemplateProcessing.single: %v", err)
		}
		var specials map[string]struct {
			IDs []int `json:"ids"`
		}
		_ = json.Unmarshal(c["special_tokens"], &specials)
		seen := false
		for _, p := range single {
			switch {
			case p.Sequence != nil:
				seen = true
			case p.SpecialToken != nil:
				sp, ok := specials[p.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("TemplateProcessing: special token %q not in special_tokens", p.SpecialToken.ID)
				}
				if seen {
					t.suffixIDs = append(t.suffixIDs, sp.IDs...)
				} else {
					t.prefixIDs = append(t.prefixIDs, sp.IDs...)
				}
			}
		}
	case "RobertaProcessing", "BertProcessing":
		var cls, sep []json.RawMessage
		_ = json.Unmarshal(c["cls"], &cls)
		_ = json.Unmarshal(c["sep"], &sep)
		var id int
		if len(cls) == 2 && json.Unmarshal(cls[1], &id) == nil {
			t.prefixIDs = append(t.prefixIDs, id)
		}
		if len(sep) == 2 && json.Unmarshal(sep[1], &id) == nil {
			t.suffixIDs = append(t.suffixIDs, id)
		}
	default:
		return fmt.Errorf("post-processor type %q not supported", c.typ())
	}
	return nil
}

// guessSpecials fills BOS/EOS/PAD/UNK from the post-processor template,
// the model's unk_token and conventional token names. A name matches an
// added token, or, when vocabToo (no tokenizer_config.json names the
// specials), also an ordinary vocabulary entry.
func (t *HFTokenizer) guessSpecials(vocabToo bool) {
	t.bos, t.eos, t.pad, t.unk = -1, -1, -1, t.unkID
	if len(t.prefixIDs) > 0 {
		t.bos = t.prefixIDs[0]
	}
	if len(t.suffixIDs) > 0 {
		t.eos = t.suffixIDs[len(t.suffixIDs)-1]
	}
	find := func(names ...string) int {
		for _, n := range names {
			for _, a := range t.added {
				if a.content == n {
					return a.id
				}
			}
			if id, ok := t.vocab[n]; ok && vocabToo {
				return id
			}
		}
		return -1
	}
	if t.bos < 0 {
		t.bos = find("<s>", "<|begin_of_text|>", "<bos>", "[CLS]")
	}
	if t.eos < 0 {
		t.eos = find("</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[SEP]")
	}
	if t.pad < 0 {
		t.pad = find("<pad>", "<|pad|>", "[PAD]")
	}
	if t.unk < 0 {
		t.unk = find("<unk>", "[UNK]")
	}
}

// specialKeys are the tokenizer_config.json keys naming special tokens.
var specialKeys = [...]string{"bos_token", "eos_token", "pad_token", "unk_token"}

// applyConfig reads bos_token/eos_token/pad_token/unk_token from a
// tokenizer_config.json (strings or {"content": ...} objects), as
// transformers does: a key set to null means the tokenizer has no such
// token (Qwen's "bos_token": null: nothing is prepended), except unk_token
// when tokenizer.json's model names one (the model emits it whatever the
// config says). A config that names any special token is taken as the
// list of them: a key it leaves out is guessed only from the template and
// the added tokens, never from an ordinary vocabulary entry (Qwen3's
// vocabulary holds "<s>" as plain text, id 128245).
func (t *HFTokenizer) applyConfig(b []byte) error {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	named := false
	for _, k := range specialKeys {
		if _, ok := cfg[k]; ok {
			named = true
		}
	}
	if !named {
		return nil
	}
	t.guessSpecials(false)
	for i, dst := range []*int{&t.bos, &t.eos, &t.pad, &t.unk} {
		key := specialKeys[i]
		raw, ok := cfg[key]
		if !ok {
			continue
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			if key == "unk_token" {
				*dst = t.unkID
			} else {
				*dst = -1
			}
			continue
		}
		var name string
		if json.Unmarshal(raw, &name) != nil {
			var obj struct {
				Content *string `json:"content"`
			}
			if json.Unmarshal(raw, &obj) != nil || obj.Content == nil {
				return fmt.Errorf("%s: want a string, null or {\"content\": ...}", key)
			}
			name = *obj.Content
		}
		if id, ok := t.TokenID(name); ok {
			*dst = id
		} else {
			// Configs sometimes name a token that is added at run time
			// (a pad token, typically): not a reason to refuse the tokenizer.
			*dst = -1
			t.warnings = append(t.warnings, fmt.Sprintf("tokenizer_config.json %s %q is not in the vocabulary; treated as absent", key, name))
		}
	}
	return nil
}

// TokenID returns the id of an exact token string (added tokens included).
func (t *HFTokenizer) TokenID(tok string) (int, bool) {
	for _, a := range t.added {
		if a.content == tok {
			return a.id, true
		}
	}
	id, ok := t.vocab[tok]
	return id, ok
}

// Token returns the token string of id ("" when out of range).
func (t *HFTokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idTok) {
		return ""
	}
	return t.idTok[id]
}

// VocabSize, BOS, EOS, PAD, UNK and Identity implement Tokenizer. The
// special ids come from tokenizer_config.json when it was read, else from
// the post-processor template and conventional token names.
func (t *HFTokenizer) VocabSize() int   { return len(t.idTok) }
func (t *HFTokenizer) BOS() int         { return t.bos }
func (t *HFTokenizer) EOS() int         { return t.eos }
func (t *HFTokenizer) PAD() int         { return t.pad }
func (t *HFTokenizer) UNK() int         { return t.unk }
func (t *HFTokenizer) Identity() string { return t.identity }

// IsSpecial reports whether id is a special added token (Decode skips it).
func (t *HFTokenizer) IsSpecial(id int) bool { return t.isSpec[id] }

// Encode returns the ids of text without the post-processor's special
// tokens (see EncodeSpecial). As HF does: added tokens with
// normalized=false are matched in the raw text, each stretch between them
// is normalized, then added tokens with normalized=true are matched in the
// normalized text, and the rest goes through the pre-tokenizer and model.
func (t *HFTokenizer) Encode(text string) []int {
	var ids []int
	first := true
	t.rawAdded.split(text, func(seg string, added int) {
		if added >= 0 {
			ids = append(ids, added)
		} else {
			t.normAdded.split(t.normalize(seg, first), func(p string, added int) {
				if added >= 0 {
					ids = append(ids, added)
				} else {
					ids = t.encodeSegment(p, first, ids)
				}
				first = false
			})
		}
		first = false
	})
	return ids
}

// normalize applies the tokenizer.json's normalizer to s.
func (t *HFTokenizer) normalize(s string, first bool) string {
	for _, n := range t.norm {
		s = n(s, first)
	}
	return s
}

// EncodeSpecial is Encode plus the post-processor template's special tokens
// (e.g. Llama's BOS), as HF's encode(add_special_tokens=True) gives.
func (t *HFTokenizer) EncodeSpecial(text string) []int {
	ids := append([]int(nil), t.prefixIDs...)
	ids = append(ids, t.Encode(text)...)
	return append(ids, t.suffixIDs...)
}

// addedSet is a set of added tokens matched leftmost-longest in text.
type addedSet struct {
	toks  []addedTok // sorted by content length, longest first
	first [256][]int // indexes into toks by first byte of content
}

func newAddedSet(toks []addedTok) addedSet {
	s := addedSet{toks: toks}
	sort.SliceStable(s.toks, func(i, k int) bool { return len(s.toks[i].content) > len(s.toks[k].content) })
	for k, a := range s.toks {
		s.first[a.content[0]] = append(s.first[a.content[0]], k)
	}
	return s
}

// split calls f for each stretch of text between added tokens
// (added=-1) and each added token (its id), leftmost-longest matching.
func (s *addedSet) split(text string, f func(seg string, added int)) {
	if len(s.toks) == 0 {
		if text != "" {
			f(text, -1)
		}
		return
	}
	start := 0
	for i := 0; i < len(text); {
		m := -1
		for _, k := range s.first[text[i]] { // longest first
			a := s.toks[k]
			if strings.HasPrefix(text[i:], a.content) && wordBoundaryOK(text, i, i+len(a.content), a) {
				m = k
				break
			}
		}
		if m < 0 {
			i++
			continue
		}
		a := s.toks[m]
		segEnd, next := i, i+len(a.content)
		if a.lstrip {
			for segEnd > start {
				r, w := utf8.DecodeLastRuneInString(text[start:segEnd])
				if !unicode.IsSpace(r) {
					break
				}
				segEnd -= w
			}
		}
		if a.rstrip {
			next += spanWhile(text, next, unicode.IsSpace)
		}
		if segEnd > start {
			f(text[start:segEnd], -1)
		}
		f("", a.id)
		start, i = next, next
	}
	if start < len(text) {
		f(text[start:], -1)
	}
}

func wordBoundaryOK(text string, i, j int, a addedTok) bool {
	if !a.singleWord {
		return true
	}
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' }
	if i > 0 {
		if r, _ := utf8.DecodeLastRuneInString(text[:i]); isWord(r) {
			return false
		}
	}
	if j < len(text) {
		if r, _ := utf8.DecodeRuneInString(text[j:]); isWord(r) {
			return false
		}
	}
	return true
}

// fastByteLevel recognises pre-tokenizers that are ByteLevel (optionally
// after one Isolated regex Split) without add_prefix_space, and returns
// the split they perform.
func fastByteLevel(raw json.RawMessage) (splitter, bool) {
	c, err := parseComponent(raw)
	if c == nil || err != nil {
		return nil, false
	}
	byteLevel := func(c component) (splitter, bool) {
		if c.typ() != "ByteLevel" || c.boolean("add_prefix_space", true) {
			return nil, false
		}
		if c.boolean("use_regex", true) {
			sp, _ := newSplitter(GPT2Pattern)
			return sp, true
		}
		return nil, true
	}
	switch c.typ() {
	case "ByteLevel":
		return byteLevel(c)
	case "Sequence":
		subs, err := c.list("pretokenizers")
		if err != nil || len(subs) != 2 || subs[0].typ() != "Split" {
			return nil, false
		}
		pat, isRe, err := subs[0].pattern()
		if beh, _ := subs[0].str("behavior"); err != nil || !isRe || beh != "Isolated" || subs[0].boolean("invert", false) {
			return nil, false
		}
		sp, err := newSplitter(pat)
		if err != nil {
			return nil, false
		}
		if inner, ok := byteLevel(subs[1]); !ok || inner != nil {
			return nil, false
		}
		return sp, true
	}
	return nil, false
}

func (t *HFTokenizer) encodeSegment(seg string, first bool, ids []int) []int {
	if t.fast {
		word := func(p string) {
			if c, ok := t.cache.get(p); ok {
				ids = append(ids, c...)
				return
			}
			wi := t.encodeWord(byteLevelEncode(p))
			t.cache.put(p, wi) // put clones p, which is a slice of the text
			ids = append(ids, wi...)
		}
		if t.fastSplit == nil {
			word(seg)
		} else {
			t.fastSplit.split(seg, word)
		}
		return ids
	}
	words := []string{seg}
	for _, p := range t.pre {
		words = p(words, first)
	}
	for _, w := range words {
		if w == "" {
			continue
		}
		if c, ok := t.cache.get(w); ok {
			ids = append(ids, c...)
			continue
		}
		wi := t.encodeWord(w)
		t.cache.put(w, wi)
		ids = append(ids, wi...)
	}
	return ids
}

// encodeWord runs the BPE model on one pre-tokenized word.
func (t *HFTokenizer) encodeWord(w string) []int {
	if t.ignoreMg {
		if id, ok := t.vocab[w]; ok {
			return []int{id}
		}
	}
	syms := make([]int, 0, len(w))
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		ch := w[i : i+n]
		i += n
		if id, ok := t.vocab[ch]; ok {
			syms = append(syms, id)
			continue
		}
		if t.byteFB {
			for k := 0; k < len(ch); k++ {
				syms = append(syms, t.byteIDs[ch[k]])
			}
			continue
		}
		if t.unkID >= 0 {
			if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == t.unkID {
				continue
			}
			syms = append(syms, t.unkID)
		}
		// No unk token: HF drops the character.
	}
	syms = t.merges.applyMerges(syms)
	return append([]int(nil), syms...)
}

// Decode returns the text of ids, like HF's decode(skip_special_tokens=True):
// special added tokens and out-of-range ids decode to "", the rest goes
// through the decoder (tokens joined by spaces when there is none).
func (t *HFTokenizer) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.idTok) || t.isSpec[id] {
			continue
		}
		toks = append(toks, t.idTok[id])
	}
	if len(t.dec) == 0 {
		return strings.Join(toks, " ") // what HF does without a decoder
	}
	for _, d := range t.dec {
		toks = d(toks)
	}
	var sb bytes.Buffer
	for _, s := range toks {
		sb.WriteString(s)
	}
	return sb.String()
}
