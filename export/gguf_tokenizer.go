package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// GGUF token types (gguf-py's TokenType, the SentencePiece proto's numbers).
const (
	ttNormal      = 1
	ttUnknown     = 2
	ttControl     = 3
	ttUserDefined = 4
	ttUnused      = 5
	ttByte        = 6
)

// ggufVocab is the tokenizer.* metadata of an export.
type ggufVocab struct {
	model, pre string
	kvs        []kv
	bos, eos   int // the tokenizer's own (-1: none)
	// addBOS/addEOS: the tokenizer.json post-processor's template puts
	// them around a sequence (HF's add_special_tokens=True).
	addBOS, addEOS bool
	fromJSON       bool // read from tokenizer.json (its template decides BOS)
	// notes are what llama.cpp will tokenize differently (GGUFResult.Notes).
	notes []string
}

// template reads what tk's post-processor adds around a text.
func (v *ggufVocab) template(tk *data.HFTokenizer) {
	ids := tk.EncodeSpecial("")
	v.addBOS = len(ids) > 0 && ids[0] == tk.BOS() && tk.BOS() >= 0
	v.addEOS = len(ids) > 0 && ids[len(ids)-1] == tk.EOS() && tk.EOS() >= 0 && (len(ids) > 1 || !v.addBOS)
}

// ggufTokenizer reads the checkpoint's tokenizer and writes it as
// llama.cpp expects: a byte-level BPE tokenizer.json as the "gpt2" model
// (tokens, types, merges, and the pre-tokenizer llama.cpp names for the
// split pattern); a SentencePiece tokenizer.model as the "llama" model
// (pieces, scores, types); a SentencePiece-style BPE tokenizer.json (byte
// fallback, ▁ for spaces) with no tokenizer.model likewise (spmJSONVocab). Without either, the vocabulary is "none"
// (llama.cpp then runs on token ids only). The vocabulary is padded with
// [PADi] tokens up to vocab_size, as the converter does.
func ggufTokenizer(dir string, cfg *model.Config) (*ggufVocab, error) {
	tj := filepath.Join(dir, "tokenizer.json")
	sp := filepath.Join(dir, "tokenizer.model")
	_, errJ := os.Stat(tj)
	_, errS := os.Stat(sp)
	var v *ggufVocab
	var err error
	switch {
	case errJ == nil:
		var byteLevel bool
		var b []byte
		if b, err = os.ReadFile(tj); err != nil {
			return nil, err
		}
		// The special tokens as data reads them (tokenizer_config.json
		// beside the file names them).
		specials := func() (*data.HFTokenizer, error) { return data.LoadHFTokenizer(tj) }
		v, byteLevel, err = gpt2Vocab(b, tj, cfg, specials)
		if err == nil && !byteLevel {
			if errS == nil {
				v, err = llamaVocab(sp, cfg) // the original SentencePiece model wins
			} else {
				v, err = spmJSONVocab(b, tj, cfg, specials)
			}
		}
	case errS == nil:
		v, err = llamaVocab(sp, cfg)
	default:
		return &ggufVocab{model: "none", kvs: []kv{kvString("tokenizer.ggml.model", "none")}}, nil
	}
	if err != nil {
		return nil, err
	}
	v.kvs = append(v.kvs, specialKVs(dir, cfg, v)...)
	return v, nil
}

// llamaVocab is a SentencePiece model as llama.cpp's "llama" vocabulary.
func llamaVocab(path string, cfg *model.Config) (*ggufVocab, error) {
	m, err := data.LoadSentencePiece(path)
	if err != nil {
		return nil, err
	}
	if len(m.Pieces) > cfg.VocabSize {
		return nil, fmt.Errorf("%s has %d pieces, the model's vocab_size is %d", path, len(m.Pieces), cfg.VocabSize)
	}
	toks := make([]string, cfg.VocabSize)
	scores := make([]float32, cfg.VocabSize)
	types := make([]int32, cfg.VocabSize)
	for i := range toks {
		if i < len(m.Pieces) {
			p := m.Pieces[i]
			toks[i], scores[i], types[i] = p.Piece, p.Score, int32(p.Type)
			continue
		}
		toks[i], scores[i], types[i] = fmt.Sprintf("[PAD%d]", i), -1000, ttUnused
	}
	v := &ggufVocab{model: "llama", pre: "default"}
	v.kvs = []kv{
		kvString("tokenizer.ggml.model", "llama"),
		kvString("tokenizer.ggml.pre", "default"),
		kvStrings("tokenizer.ggml.tokens", toks),
		kvF32s("tokenizer.ggml.scores", scores),
		kvI32s("tokenizer.ggml.token_type", types),
		kvBool("tokenizer.ggml.add_space_prefix", m.Normalizer.AddDummyPrefix),
		kvBool("tokenizer.ggml.remove_extra_whitespaces", m.Normalizer.RemoveExtraWhitespaces),
	}
	if m.UNK() >= 0 {
		v.kvs = append(v.kvs, kvU32("tokenizer.ggml.unknown_token_id", m.UNK()))
	}
	if m.PAD() >= 0 {
		v.kvs = append(v.kvs, kvU32("tokenizer.ggml.padding_token_id", m.PAD()))
	}
	v.bos, v.eos = m.BOS(), m.EOS()
	return v, nil
}

// preNames maps split patterns to llama.cpp's tokenizer.ggml.pre names
// (llama-vocab.cpp: "gpt-2" → GPT2, "llama-bpe" → LLAMA3, "qwen2" → QWEN2).
var preNames = map[string]string{
	data.GPT2Pattern:   "gpt-2",
	data.Llama3Pattern: "llama-bpe",
	data.Qwen2Pattern:  "qwen2",
}

// hfTok is the part of a tokenizer.json the vocabularies read (byte-level
// BPE and SentencePiece-style).
type hfTok struct {
	Model struct {
		Type         string          `json:"type"`
		Vocab        map[string]int  `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		ByteFallback bool            `json:"byte_fallback"`
		UnkToken     *string         `json:"unk_token"`
	} `json:"model"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	AddedTokens  []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
}

type hfPre struct {
	Type           string  `json:"type"`
	AddPrefixSpace bool    `json:"add_prefix_space"`
	UseRegex       *bool   `json:"use_regex"`
	Pretokenizers  []hfPre `json:"pretokenizers"`
	Pattern        struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
}

// gpt2Vocab is a byte-level BPE tokenizer.json as llama.cpp's "gpt2"
// vocabulary; byteLevel is false (and v nil) for other tokenizer.json kinds.
func gpt2Vocab(b []byte, path string, cfg *model.Config, specials func() (*data.HFTokenizer, error)) (v *ggufVocab, byteLevel bool, err error) {
	var t hfTok
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	var pre hfPre
	if len(t.PreTokenizer) > 0 && string(t.PreTokenizer) != "null" {
		if err := json.Unmarshal(t.PreTokenizer, &pre); err != nil {
			return nil, false, fmt.Errorf("%s: pre_tokenizer: %w", path, err)
		}
	}
	steps := []hfPre{pre}
	if pre.Type == "Sequence" {
		steps = pre.Pretokenizers
	}
	if t.Model.Type != "BPE" || len(steps) == 0 || steps[len(steps)-1].Type != "ByteLevel" {
		return nil, false, nil
	}
	var notes []string
	if len(t.Normalizer) > 0 && string(t.Normalizer) != "null" {
		// Qwen2/Qwen3's tokenizer.json declare NFC; llama.cpp applies no
		// normalizer (nor does convert_hf_to_gguf record one), which only
		// matters for text not already in NFC. Any other normalizer is
		// refused.
		var n struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(t.Normalizer, &n) != nil || n.Type != "NFC" {
			return nil, true, fmt.Errorf("%s: a normalizer before byte-level BPE has no llama.cpp pre-tokenizer", path)
		}
		notes = append(notes, "the tokenizer's NFC normalizer: llama.cpp does not apply it, so text not in NFC (e.g. a combining accent) may get other ids")
	}
	// The split regex: ByteLevel's own (GPT-2's) or a Split before it.
	bl := steps[len(steps)-1]
	var pattern string
	switch {
	case len(steps) == 1 && (bl.UseRegex == nil || *bl.UseRegex):
		pattern = data.GPT2Pattern
	case len(steps) == 2 && steps[0].Type == "Split" && steps[0].Pattern.Regex != nil && bl.UseRegex != nil && !*bl.UseRegex:
		pattern = *steps[0].Pattern.Regex
	default:
		return nil, true, fmt.Errorf("%s: pre-tokenizer %s has no llama.cpp equivalent", path, t.PreTokenizer)
	}
	name, ok := preNames[pattern]
	if !ok {
		return nil, true, fmt.Errorf("%s: split pattern %q is none llama.cpp names (known: GPT-2's, Llama-3's, Qwen2's)", path, pattern)
	}
	if bl.AddPrefixSpace {
		return nil, true, fmt.Errorf("%s: ByteLevel add_prefix_space: llama.cpp's %s pre-tokenizer adds no space", path, name)
	}
	merges, err := parseMerges(t.Model.Merges)
	if err != nil {
		return nil, true, fmt.Errorf("%s: merges: %w", path, err)
	}
	toks, types, set := vocabTable(path, cfg.VocabSize)
	for s, id := range t.Model.Vocab {
		if err := set(id, s, ttNormal); err != nil {
			return nil, true, err
		}
	}
	for _, a := range t.AddedTokens {
		typ := int32(ttUserDefined)
		if a.Special {
			typ = ttControl
		}
		if err := set(a.ID, a.Content, typ); err != nil {
			return nil, true, err
		}
	}
	for i := range toks {
		if types[i] == 0 {
			toks[i], types[i] = fmt.Sprintf("[PAD%d]", i), ttUnused
		}
	}
	v = &ggufVocab{model: "gpt2", pre: name, notes: notes}
	v.kvs = []kv{
		kvString("tokenizer.ggml.model", "gpt2"),
		kvString("tokenizer.ggml.pre", name),
		kvStrings("tokenizer.ggml.tokens", toks),
		kvI32s("tokenizer.ggml.token_type", types),
		kvStrings("tokenizer.ggml.merges", merges),
	}
	v.bos, v.eos = -1, -1
	v.addSpecials(specials)
	return v, true, nil
}

// vocabTable is a vocabulary of n tokens and their types being filled by
// id: set refuses an id outside the model's vocabulary.
func vocabTable(path string, n int) (toks []string, types []int32, set func(id int, s string, typ int32) error) {
	toks, types = make([]string, n), make([]int32, n)
	set = func(id int, s string, typ int32) error {
		if id < 0 || id >= n {
			return fmt.Errorf("%s: token %q has id %d outside the model's vocab_size %d", path, s, id, n)
		}
		toks[id], types[id] = s, typ
		return nil
	}
	return toks, types, set
}

// addSpecials records the tokenizer's special ids (bos, eos, unknown,
// padding) and chat template, when its config can be read.
func (v *ggufVocab) addSpecials(specials func() (*data.HFTokenizer, error)) {
	tk, err := specials()
	if err != nil {
		return
	}
	v.bos, v.eos = tk.BOS(), tk.EOS()
	v.template(tk)
	if tk.UNK() >= 0 {
		v.kvs = append(v.kvs, kvU32("tokenizer.ggml.unknown_token_id", tk.UNK()))
	}
	if tk.PAD() >= 0 {
		v.kvs = append(v.kvs, kvU32("tokenizer.ggml.padding_token_id", tk.PAD()))
	}
}

// parseMerges reads merges as "a b" strings or [a, b] pairs, writing
// llama.cpp's "a b" form (byte-level tokens hold no plain space).
func parseMerges(raw json.RawMessage) ([]string, error) {
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		return strs, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, err
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		if strings.Contains(p[0], " ") || strings.Contains(p[1], " ") {
			return nil, fmt.Errorf("merge %q holds a space, which the GGUF form cannot", p)
		}
		out[i] = p[0] + " " + p[1]
	}
	return out, nil
}

// specialKVs are bos/eos and whether to add BOS: config.json's ids win
// over the tokenizer's (the model was trained with them), as the
// converter's SpecialVocab reads them from the config too.
func specialKVs(dir string, cfg *model.Config, v *ggufVocab) []kv {
	bos, eos := v.bos, v.eos
	if cfg.BOSTokenID >= 0 {
		bos = cfg.BOSTokenID
	}
	if len(cfg.EOSTokenIDs) > 0 {
		eos = cfg.EOSTokenIDs[0]
	}
	var out []kv
	if bos >= 0 && bos < cfg.VocabSize {
		out = append(out, kvU32("tokenizer.ggml.bos_token_id", bos))
	}
	if eos >= 0 && eos < cfg.VocabSize {
		out = append(out, kvU32("tokenizer.ggml.eos_token_id", eos))
	}
	// add_bos_token as tokenizer_config.json says; else as the
	// tokenizer.json post-processor does, and llama's SentencePiece
	// convention (add BOS) for a tokenizer.model.
	addBOS := v.addBOS || (v.model == "llama" && v.pre == "default" && bos >= 0 && !v.fromJSON)
	addEOS := v.addEOS
	if b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		var tc struct {
			AddBOS *bool `json:"add_bos_token"`
			AddEOS *bool `json:"add_eos_token"`
		}
		if json.Unmarshal(b, &tc) == nil {
			if tc.AddBOS != nil {
				addBOS = *tc.AddBOS
			}
			if tc.AddEOS != nil {
				addEOS = *tc.AddEOS
			}
		}
	}
	out = append(out, kvBool("tokenizer.ggml.add_bos_token", addBOS), kvBool("tokenizer.ggml.add_eos_token", addEOS))
	sort.SliceStable(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// spmJSONVocab writes a SentencePiece-style BPE tokenizer.json (Llama-2 and
// Mistral's layout: byte fallback, spaces as ▁, a ▁ prepended to the text)
// as llama.cpp's "llama" vocabulary. llama.cpp's SentencePiece tokenizer
// merges the adjacent pair whose result has the highest score, so a token
// made by merge i scores −(i+1): the earliest merge wins, as in BPE.
func spmJSONVocab(b []byte, path string, cfg *model.Config, specials func() (*data.HFTokenizer, error)) (*ggufVocab, error) {
	var t hfTok
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if t.Model.Type != "BPE" || !t.Model.ByteFallback {
		return nil, fmt.Errorf("%s: a %s tokenizer.json without byte fallback has no llama.cpp vocabulary here (supported: byte-level BPE, SentencePiece-style BPE with byte fallback)", path, t.Model.Type)
	}
	prefix, err := spmPrefix(t.Normalizer, t.PreTokenizer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	merges, err := parseMerges(t.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("%s: merges: %w", path, err)
	}
	toks, types, set := vocabTable(path, cfg.VocabSize)
	scores := make([]float32, cfg.VocabSize)
	for s, id := range t.Model.Vocab {
		typ := int32(ttNormal)
		if isByteToken(s) {
			typ = ttByte
		}
		if t.Model.UnkToken != nil && s == *t.Model.UnkToken {
			typ = ttUnknown
		}
		if err := set(id, s, typ); err != nil {
			return nil, err
		}
	}
	for i, m := range merges {
		a, c, _ := strings.Cut(m, " ")
		if id, ok := t.Model.Vocab[a+c]; ok && scores[id] == 0 {
			scores[id] = -float32(i + 1)
		}
	}
	for _, a := range t.AddedTokens {
		typ := int32(ttUserDefined)
		if a.Special {
			typ = ttControl
		}
		if id, ok := t.Model.Vocab[a.Content]; ok && id == a.ID && types[id] == ttUnknown {
			continue // <unk> stays UNKNOWN
		}
		if err := set(a.ID, a.Content, typ); err != nil {
			return nil, err
		}
	}
	for i := range toks {
		if types[i] == 0 {
			toks[i], scores[i], types[i] = fmt.Sprintf("[PAD%d]", i), -1000, ttUnused
		}
	}
	v := &ggufVocab{model: "llama", pre: "default", bos: -1, eos: -1, fromJSON: true}
	v.kvs = []kv{
		kvString("tokenizer.ggml.model", "llama"),
		kvString("tokenizer.ggml.pre", "default"),
		kvStrings("tokenizer.ggml.tokens", toks),
		kvF32s("tokenizer.ggml.scores", scores),
		kvI32s("tokenizer.ggml.token_type", types),
		kvBool("tokenizer.ggml.add_space_prefix", prefix),
	}
	v.addSpecials(specials)
	return v, nil
}

// isByteToken reports SentencePiece's byte pieces, <0x00> … <0xFF>.
func isByteToken(s string) bool {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return false
	}
	for _, c := range s[3:5] {
		if !strings.ContainsRune("0123456789ABCDEF", c) {
			return false
		}
	}
	return true
}

// spmPrefix reads the two layouts llama.cpp's SentencePiece tokenizer
// reproduces — a normalizer Prepend(▁) + Replace(" " → ▁) (Llama-2), or a
// Metaspace(▁) pre-tokenizer that does not split (prepend "first" or
// "always": one ▁ before the text) — and says whether a ▁ is prepended.
func spmPrefix(norm, pre json.RawMessage) (bool, error) {
	type step struct {
		Type        string `json:"type"`
		Prepend     string `json:"prepend"`
		Content     string `json:"content"`
		Replacement string `json:"replacement"`
		Scheme      string `json:"prepend_scheme"`
		Split       *bool  `json:"split"`
		Pattern     struct {
			String *string `json:"String"`
		} `json:"pattern"`
		Normalizers []step `json:"normalizers"`
	}
	null := func(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }
	switch {
	case !null(norm) && null(pre):
		var n step
		if err := json.Unmarshal(norm, &n); err != nil {
			return false, err
		}
		steps := []step{n}
		if n.Type == "Sequence" {
			steps = n.Normalizers
		}
		prefix, replace := false, false
		for _, s := range steps {
			switch {
			case s.Type == "Prepend" && s.Prepend == "\u2581":
				prefix = true
			case s.Type == "Replace" && s.Pattern.String != nil && *s.Pattern.String == " " && s.Content == "\u2581":
				replace = true
			default:
				return false, fmt.Errorf("normalizer step %q has no llama.cpp equivalent", s.Type)
			}
		}
		if !replace {
			return false, errors.New("the normalizer does not turn spaces into ▁")
		}
		return prefix, nil
	case null(norm) && !null(pre):
		var p step
		if err := json.Unmarshal(pre, &p); err != nil {
			return false, err
		}
		if p.Type != "Metaspace" || (p.Replacement != "" && p.Replacement != "\u2581") || (p.Split != nil && *p.Split) {
			return false, fmt.Errorf("pre-tokenizer %s has no llama.cpp equivalent", pre)
		}
		return p.Scheme != "never", nil
	}
	return false, errors.New("a SentencePiece-style tokenizer.json needs either the Llama-2 normalizer or a Metaspace pre-tokenizer")
}
