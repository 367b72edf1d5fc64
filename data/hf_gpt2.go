package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// LoadGPT2Files reads a GPT-2 style byte-level BPE given as vocab.json
// (token → id) and merges.txt (one "a b" merge per line, after an optional
// "#version" line) — the files of transformers' slow GPT2Tokenizer and of
// Megatron-LM's GPT2BPETokenizer (--vocab-file/--merge-file). Vocabulary
// entries spelled <|...|> (e.g. <|endoftext|>) become special tokens.
// A tokenizer_config.json beside vocab.json names BOS/EOS/PAD.
func LoadGPT2Files(vocabPath, mergesPath string) (*HFTokenizer, error) {
	vb, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, err
	}
	mb, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, err
	}
	var vocab map[string]int
	if err := json.Unmarshal(vb, &vocab); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of token → id: %v", vocabPath, err)
	}
	var merges []string
	sc := bufio.NewScanner(bytes.NewReader(mb))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || n == 1 && strings.HasPrefix(line, "#version") {
			continue
		}
		if a, b, ok := strings.Cut(line, " "); !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s:%d: want two tokens separated by one space, got %q", mergesPath, n, line)
		}
		merges = append(merges, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", mergesPath, err)
	}
	special := regexp.MustCompile(`^<\|[^|]+\|>$`)
	var added []map[string]any
	for tok, id := range vocab {
		if special.MatchString(tok) {
			added = append(added, map[string]any{"id": id, "content": tok, "special": true,
				"single_word": false, "lstrip": false, "rstrip": false, "normalized": false})
		}
	}
	sort.Slice(added, func(i, j int) bool { return added[i]["id"].(int) < added[j]["id"].(int) })
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	js, err := json.Marshal(map[string]any{
		"version":        "1.0",
		"added_tokens":   added,
		"pre_tokenizer":  byteLevel,
		"decoder":        byteLevel,
		"post_processor": nil,
		"normalizer":     nil,
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	})
	if err != nil {
		return nil, err
	}
	t, err := ParseHFTokenizer(js)
	if err != nil {
		return nil, fmt.Errorf("%s + %s: %w", vocabPath, mergesPath, err)
	}
	t.identity = "gpt2-bpe:" + shortHash(append(vb, mb...))
	cfg := filepath.Join(filepath.Dir(vocabPath), "tokenizer_config.json")
	if cb, err := os.ReadFile(cfg); err == nil {
		if err := t.applyConfig(cb); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg, err)
		}
	}
	return t, nil
}

// MergesTxt renders the merges as a GPT-2 merges.txt.
func (r *TrainedBPE) MergesTxt() []byte {
	var b bytes.Buffer
	b.WriteString("#version: 0.2\n")
	for _, m := range r.Merges {
		b.WriteString(m[0] + " " + m[1] + "\n")
	}
	return b.Bytes()
}

// VocabJSON renders the vocabulary as a GPT-2 vocab.json.
func (r *TrainedBPE) VocabJSON() []byte {
	v := make(map[string]int, len(r.Tokens))
	for id, tok := range r.Tokens {
		v[tok] = id
	}
	b, _ := json.Marshal(v)
	return b
}
