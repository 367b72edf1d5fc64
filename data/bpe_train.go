package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/minitron-dev/minitron/internal/atomicfile"
)

// TrainOptions configures TrainBPE.
type TrainOptions struct {
	// VocabSize is the final vocabulary size including the 256 byte tokens
	// and the special tokens. Training stops earlier when no pair occurs
	// MinFrequency times.
	VocabSize int
	// SpecialTokens are added first (ids 0, 1, ...) and never learned from
	// text; occurrences in the text are cut out before counting. Default
	// {"<|endoftext|>", "<|pad|>"}.
	SpecialTokens []string
	// EOS, BOS, PAD name special tokens for tokenizer_config.json. Defaults:
	// EOS and BOS "<|endoftext|>" (GPT-2 style: one token ends a document
	// and starts the next), PAD "<|pad|>" — each only if it is a special token.
	EOS, BOS, PAD string
	// Pattern is the split regex: "gpt2" (default; the ByteLevel
	// pre-tokenizer's own) or "llama3" (digits in groups of three, newlines
	// kept apart; written as a Split pre-tokenizer).
	Pattern string
	// MinFrequency: pairs seen fewer times are not merged (default 2).
	MinFrequency int
	// Workers pre-tokenize in parallel (default GOMAXPROCS).
	Workers int
	// Progress, if set, is called after counting (done=0) and then every
	// few merges with the number of learned tokens and the number wanted.
	Progress func(done, want int64)
}

// TrainedBPE is the result of TrainBPE: a byte-level BPE vocabulary.
type TrainedBPE struct {
	Tokens  []string    // id → token (special tokens, then bytes, then merges)
	Merges  [][2]string // in rank order
	Special []string
	Pattern string // "gpt2" or "llama3"
	BOS     string
	EOS     string
	PAD     string
	// Words and TotalWords describe the training input after pre-tokenization.
	Words      int
	TotalWords int64
}

// TrainBPE learns a byte-level BPE tokenizer from texts. It is
// deterministic: the most frequent pair is merged first, ties broken by
// the lexicographic order of the pair's (left, right) token bytes.
//
// Counting is done once over unique pre-tokenized words; each merge then
// updates only the words that contain the merged pair, with a lazily
// updated max-heap of pair counts.
func TrainBPE(texts iter.Seq[string], opts TrainOptions) (*TrainedBPE, error) {
	if opts.SpecialTokens == nil {
		opts.SpecialTokens = []string{"<|endoftext|>", "<|pad|>"}
	}
	if opts.Pattern == "" {
		opts.Pattern = "gpt2"
	}
	var pattern string
	switch opts.Pattern {
	case "gpt2":
		pattern = GPT2Pattern
	case "llama3":
		pattern = Llama3Pattern
	default:
		return nil, fmt.Errorf("train: unknown pattern %q (want gpt2 or llama3)", opts.Pattern)
	}
	if opts.MinFrequency <= 0 {
		opts.MinFrequency = 2
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	seen := map[string]bool{}
	for _, s := range opts.SpecialTokens {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("train: special token %q is empty or repeated", s)
		}
		seen[s] = true
	}
	base := len(opts.SpecialTokens) + 256
	if opts.VocabSize < base {
		return nil, fmt.Errorf("train: vocab size %d is below the %d byte and special tokens", opts.VocabSize, base)
	}
	pick := func(v, def string) string {
		if v == "" {
			v = def
		}
		if seen[v] {
			return v
		}
		return ""
	}
	res := &TrainedBPE{Special: opts.SpecialTokens, Pattern: opts.Pattern,
		BOS: pick(opts.BOS, "<|endoftext|>"), EOS: pick(opts.EOS, "<|endoftext|>"), PAD: pick(opts.PAD, "<|pad|>")}

	counts, total := countWords(texts, pattern, opts.SpecialTokens, opts.Workers)
	res.Words, res.TotalWords = len(counts), total

	// Token table: specials, then the 256 byte tokens in byte order.
	res.Tokens = append(res.Tokens, opts.SpecialTokens...)
	for b := 0; b < 256; b++ {
		res.Tokens = append(res.Tokens, string(byteToRune[b]))
	}
	byteID := func(r rune) int32 { return int32(len(opts.SpecialTokens)) + int32(runeToByte[r]) }

	// Unique words as symbol sequences, sorted so that the result does not
	// depend on map order.
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	tr := &bpeTrainer{tokens: res.Tokens, pairs: map[uint64]int64{}, where: map[uint64][]int32{}, heap: newPriorityQueue(pairBefore)}
	tr.words = make([]trainWord, len(keys))
	for i, w := range keys {
		syms := make([]int32, 0, len(w))
		for _, r := range w {
			syms = append(syms, byteID(r))
		}
		tr.words[i] = trainWord{syms: syms, count: counts[w]}
	}
	counts = nil
	for i := range tr.words {
		w := &tr.words[i]
		for k := 0; k+1 < len(w.syms); k++ {
			p := pairKey(int(w.syms[k]), int(w.syms[k+1]))
			tr.pairs[p] += w.count
			tr.where[p] = append(tr.where[p], int32(i))
		}
	}
	for p, c := range tr.pairs {
		tr.heap.push(tr.cand(p, c))
	}
	want := opts.VocabSize - base
	if opts.Progress != nil {
		opts.Progress(0, int64(want))
	}
	stamp := make([]int32, len(tr.words))
	for i := range stamp {
		stamp[i] = -1
	}
	// Different merges can spell the same token ((ab,c) and (a,bc) both
	// give "abc"): like HF's trainer, such a merge is recorded but reuses
	// the token's id and takes no vocabulary slot.
	ids := make(map[string]int32, opts.VocabSize)
	for i, tok := range tr.tokens {
		ids[tok] = int32(i)
	}
	for len(tr.tokens) < opts.VocabSize && tr.heap.len() > 0 {
		top := tr.heap.pop()
		cur := tr.pairs[top.pair]
		if cur != top.count {
			if cur > 0 {
				tr.heap.push(tr.cand(top.pair, cur))
			}
			continue
		}
		if cur < int64(opts.MinFrequency) {
			break
		}
		a, b := int32(top.pair>>32), int32(uint32(top.pair))
		merged := tr.tokens[a] + tr.tokens[b]
		newID, ok := ids[merged]
		if !ok {
			newID = int32(len(tr.tokens))
			tr.tokens = append(tr.tokens, merged)
			ids[merged] = newID
		}
		res.Merges = append(res.Merges, [2]string{tr.tokens[a], tr.tokens[b]})
		tr.merge(a, b, newID, stamp, int32(len(res.Merges)))
		if opts.Progress != nil && len(res.Merges)%100 == 0 {
			opts.Progress(int64(len(tr.tokens)-base), int64(want))
		}
	}
	res.Tokens = tr.tokens
	if opts.Progress != nil {
		opts.Progress(int64(len(tr.tokens)-base), int64(want))
	}
	return res, nil
}

type trainWord struct {
	syms  []int32
	count int64
}

type bpeTrainer struct {
	tokens []string
	words  []trainWord
	pairs  map[uint64]int64
	where  map[uint64][]int32 // pair → words that contain (or contained) it
	heap   *priorityQueue[pairCand]
}

func (tr *bpeTrainer) cand(p uint64, c int64) pairCand {
	return pairCand{pair: p, count: c, left: tr.tokens[p>>32], right: tr.tokens[uint32(p)]}
}

// merge replaces a,b by id in every word that holds the pair and updates
// the pair counts by the difference between each word's old and new pairs.
func (tr *bpeTrainer) merge(a, b, id int32, stamp []int32, step int32) {
	p := pairKey(int(a), int(b))
	delta := map[uint64]int64{}
	for _, wi := range tr.where[p] {
		if stamp[wi] == step {
			continue // listed twice
		}
		stamp[wi] = step
		w := &tr.words[wi]
		found := false
		for k := 0; k+1 < len(w.syms); k++ {
			if w.syms[k] == a && w.syms[k+1] == b {
				found = true
				break
			}
		}
		if !found {
			continue // stale entry
		}
		for k := 0; k+1 < len(w.syms); k++ {
			delta[pairKey(int(w.syms[k]), int(w.syms[k+1]))] -= w.count
		}
		out := w.syms[:0]
		for k := 0; k < len(w.syms); k++ {
			if k+1 < len(w.syms) && w.syms[k] == a && w.syms[k+1] == b {
				out = append(out, id)
				k++
			} else {
				out = append(out, w.syms[k])
			}
		}
		w.syms = out
		for k := 0; k+1 < len(w.syms); k++ {
			q := pairKey(int(w.syms[k]), int(w.syms[k+1]))
			delta[q] += w.count
			if w.syms[k] == id || w.syms[k+1] == id {
				tr.where[q] = append(tr.where[q], wi)
			}
		}
	}
	delete(tr.where, p)
	for q, d := range delta {
		if d == 0 {
			continue
		}
		c := tr.pairs[q] + d
		if c <= 0 {
			delete(tr.pairs, q)
			continue
		}
		tr.pairs[q] = c
		if d > 0 {
			tr.heap.push(tr.cand(q, c))
		}
	}
}

// pairCand is a heap entry; entries go stale when counts drop and are
// re-pushed with the current count when popped.
type pairCand struct {
	pair        uint64
	count       int64
	left, right string
}

// pairBefore orders the trainer's queue: higher count first, then
// lexicographically smaller (left, right), so training is deterministic.
func pairBefore(x, y *pairCand) bool {
	if x.count != y.count {
		return x.count > y.count
	}
	if x.left != y.left {
		return x.left < y.left
	}
	return x.right < y.right
}

// countWords pre-tokenizes texts (special tokens cut out) into byte-level
// word counts, with workers goroutines each filling its own map.
func countWords(texts iter.Seq[string], pattern string, specials []string, workers int) (map[string]int64, int64) {
	sp, _ := newSplitter(pattern)
	ch := make(chan string, 4*workers)
	parts := make([]map[string]int64, workers)
	totals := make([]int64, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			m := map[string]int64{}
			for text := range ch {
				for _, seg := range splitSpecials(text, specials) {
					sp.split(seg, func(p string) {
						m[byteLevelEncode(p)]++
						totals[w]++
					})
				}
			}
			parts[w] = m
		}(w)
	}
	for t := range texts {
		ch <- t
	}
	close(ch)
	wg.Wait()
	out := parts[0]
	var total int64
	for w, m := range parts {
		total += totals[w]
		if w == 0 {
			continue
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out, total
}

// splitSpecials cuts every special token out of text.
func splitSpecials(text string, specials []string) []string {
	segs := []string{text}
	for _, s := range specials {
		if !strings.Contains(text, s) {
			continue
		}
		var next []string
		for _, seg := range segs {
			for _, p := range strings.Split(seg, s) {
				if p != "" {
					next = append(next, p)
				}
			}
		}
		segs = next
	}
	return segs
}

// TokenizerJSON renders the result as a Hugging Face tokenizer.json (BPE
// model, byte-level pre-tokenizer and decoder, special tokens as added
// tokens). The vocabulary is written in id order.
func (r *TrainedBPE) TokenizerJSON() []byte {
	var b bytes.Buffer
	q := func(s string) string {
		var sb strings.Builder
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		return strings.TrimSuffix(sb.String(), "\n")
	}
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, s := range r.Special {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n    {\"id\": %d, \"content\": %s, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}", i, q(s))
	}
	b.WriteString("\n  ],\n  \"normalizer\": null,\n")
	switch r.Pattern {
	case "llama3":
		fmt.Fprintf(&b, "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": %s}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]},\n", q(Llama3Pattern))
	default:
		b.WriteString("  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true},\n")
	}
	b.WriteString("  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},\n")
	b.WriteString("  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n")
	b.WriteString("  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {")
	for id, tok := range r.Tokens {
		if id > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n      %s: %d", q(tok), id)
	}
	b.WriteString("\n    },\n    \"merges\": [")
	for i, m := range r.Merges {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n      %s", q(m[0]+" "+m[1]))
	}
	b.WriteString("\n    ]\n  }\n}\n")
	return b.Bytes()
}

// TokenizerConfigJSON renders a tokenizer_config.json for transformers'
// PreTrainedTokenizerFast.
func (r *TrainedBPE) TokenizerConfigJSON() []byte {
	dec := map[string]any{}
	for i, s := range r.Special {
		dec[fmt.Sprint(i)] = map[string]any{"content": s, "lstrip": false, "normalized": false,
			"rstrip": false, "single_word": false, "special": true}
	}
	orNil := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	cfg := map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"added_tokens_decoder":         dec,
		"bos_token":                    orNil(r.BOS),
		"eos_token":                    orNil(r.EOS),
		"pad_token":                    orNil(r.PAD),
		"unk_token":                    nil,
		"add_bos_token":                false,
		"add_eos_token":                false,
		"clean_up_tokenization_spaces": false,
		"model_max_length":             1 << 30,
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n')
}

// Tokenizer returns the trained tokenizer, ready to encode.
func (r *TrainedBPE) Tokenizer() (*HFTokenizer, error) {
	t, err := ParseHFTokenizer(r.TokenizerJSON())
	if err != nil {
		return nil, err
	}
	if err := t.applyConfig(r.TokenizerConfigJSON()); err != nil {
		return nil, err
	}
	return t, nil
}

// TrainedFiles are the files WriteDir writes, in the order it publishes
// them.
var TrainedFiles = []string{"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"}

// WriteDir writes tokenizer.json and tokenizer_config.json (what
// transformers' AutoTokenizer loads) and GPT-2's vocab.json and merges.txt
// (slow GPT2Tokenizer, Megatron-LM's GPT2BPETokenizer) into dir (created if
// needed). If any of them exists (dir may be a checkpoint with its own
// tokenizer), it is refused unless overwrite. The four are staged and
// published together (atomicfile.Publish): a failure leaves none of them.
func (r *TrainedBPE) WriteDir(dir string, overwrite bool) error {
	if !overwrite {
		if err := CheckTrainedDir(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var staged []atomicfile.Staged
	for i, b := range [][]byte{r.TokenizerJSON(), r.TokenizerConfigJSON(), r.VocabJSON(), r.MergesTxt()} {
		s, err := atomicfile.Stage(filepath.Join(dir, TrainedFiles[i]), b)
		if err != nil {
			atomicfile.Discard(staged)
			return err
		}
		staged = append(staged, s)
	}
	return atomicfile.Publish(staged)
}

// CheckTrainedDir refuses a dir that already holds one of TrainedFiles, as
// WriteDir does without overwrite; callers check before training so that
// the refusal comes before the work.
func CheckTrainedDir(dir string) error {
	for _, n := range TrainedFiles {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("tokenizer: %s %w; WriteDir's overwrite replaces it", p, ErrOutputExists)
		}
	}
	return nil
}
