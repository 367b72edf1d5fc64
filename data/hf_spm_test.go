package data

import (
	"encoding/json"
	"math/rand"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// spmToHFJSON converts a SentencePiece BPE model to a tokenizer.json the
// way transformers' LlamaConverter does: the vocabulary as is, merges
// from every split of every piece into two pieces, ordered by the merged
// piece's score; control/unknown pieces become special added tokens.
// metaspace picks the newer Metaspace pre-tokenizer over the
// Prepend+Replace normalizer.
func spmToHFJSON(t *testing.T, sp *SentencePiece, metaspace bool) []byte {
	t.Helper()
	vocab := map[string]int{}
	for id, p := range sp.Pieces {
		vocab[p.Piece] = id
	}
	type merge struct {
		l, r  string
		score float32
	}
	var merges []merge
	for _, p := range sp.Pieces { // id order
		var local []merge
		for i := range p.Piece {
			if i == 0 {
				continue
			}
			l, r := p.Piece[:i], p.Piece[i:]
			if _, ok := vocab[l]; !ok {
				continue
			}
			if _, ok := vocab[r]; !ok {
				continue
			}
			local = append(local, merge{l, r, p.Score})
		}
		sort.SliceStable(local, func(i, j int) bool {
			if vocab[local[i].l] != vocab[local[j].l] {
				return vocab[local[i].l] < vocab[local[j].l]
			}
			return vocab[local[i].r] < vocab[local[j].r]
		})
		merges = append(merges, local...)
	}
	sort.SliceStable(merges, func(i, j int) bool { return merges[i].score > merges[j].score })
	var ms [][]string
	for _, m := range merges {
		ms = append(ms, []string{m.l, m.r})
	}
	var added []map[string]any
	for id, p := range sp.Pieces {
		if p.Type == PieceControl || p.Type == PieceUnknown {
			added = append(added, map[string]any{"id": id, "content": p.Piece, "special": true,
				"normalized": false, "lstrip": false, "rstrip": false, "single_word": false})
		}
	}
	j := map[string]any{
		"version":      "1.0",
		"added_tokens": added,
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": ms, "unk_token": "<unk>",
			"byte_fallback": sp.Trainer.ByteFallback, "fuse_unk": true},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0}}},
	}
	if metaspace {
		j["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}
	} else {
		j["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}}}
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHFSentencePieceStyleMatchesSPM: the Llama-2 layout of tokenizer.json
// (merges by rank, byte fallback, ▁ handling) must give spm_encode's ids
// for the Llama-like golden model (identity normalization, spaces kept,
// byte fallback). Independent golden for the HF SentencePiece-style path.
func TestHFSentencePieceStyleMatchesSPM(t *testing.T) {
	dir := filepath.Join("testdata", "tok")
	sp, err := LoadSentencePiece(filepath.Join(dir, "spm-bpe-fb.model"))
	if err != nil {
		t.Fatal(err)
	}
	text := readLines(t, filepath.Join(dir, "test.txt"))
	want := readLines(t, filepath.Join(dir, "spm-bpe-fb.ids"))
	dec := readLines(t, filepath.Join(dir, "spm-bpe-fb.decoded"))
	for _, metaspace := range []bool{false, true} {
		hf, err := ParseHFTokenizer(spmToHFJSON(t, sp, metaspace))
		if err != nil {
			t.Fatal(err)
		}
		bad, n := 0, 0
		for i, line := range text {
			if strings.Contains(line, "<s>") || strings.Contains(line, "</s>") || strings.Contains(line, "<unk>") {
				continue // HF matches added tokens in text, SentencePiece does not
			}
			if metaspace && strings.HasPrefix(line, " ") {
				// HF's Metaspace does not prepend ▁ to text that already
				// starts with one (and its decoder drops every ▁ of the
				// first token): a known difference from SentencePiece.
				continue
			}
			n++
			w := parseIDs(t, want[i])
			if got := hf.Encode(line); !slices.Equal(got, w) {
				bad++
				if bad <= 3 {
					t.Errorf("metaspace=%v line %d %q:\n got %v\nwant %v", metaspace, i+1, line, got, w)
				}
			}
			if d := hf.Decode(w); d != dec[i] && utf8.ValidString(dec[i]) {
				bad++
				if bad <= 3 {
					t.Errorf("metaspace=%v line %d Decode = %q, spm_decode %q", metaspace, i+1, d, dec[i])
				}
			}
		}
		// Random adversarial strings, against the SentencePiece encoder
		// (itself checked against Python's sentencepiece).
		for _, line := range randomLines(rand.New(rand.NewSource(3)), text, 3000) {
			if strings.Contains(line, "<s>") || strings.Contains(line, "</s>") || strings.Contains(line, "<unk>") ||
				metaspace && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "▁")) {
				continue // see above
			}
			n++
			if got, w := hf.Encode(line), sp.Encode(line); !slices.Equal(got, w) {
				bad++
				if bad <= 3 {
					t.Errorf("metaspace=%v %q:\n got %v\nwant %v", metaspace, line, got, w)
				}
			}
		}
		if bad > 0 {
			t.Errorf("metaspace=%v: %d differences in %d lines", metaspace, bad, n)
		}
	}
}
