package data

import (
	"os"
	"path/filepath"
	"testing"
)

func addFixtureSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "tok", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzLoadSentencePiece: arbitrary bytes give an error or a tokenizer
// that encodes and decodes without panicking.
func FuzzLoadSentencePiece(f *testing.F) {
	addFixtureSeeds(f, "spm-bpe.model", "spm-uni-fb.model", "spm-uni-user.model")
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0x61})
	f.Fuzz(func(t *testing.T, b []byte) {
		sp, err := ParseSentencePiece(b)
		if err != nil {
			return
		}
		ids := sp.Encode("Hello  wörld 123 <tool> 🙂\t")
		for _, id := range ids {
			if id < 0 || id >= sp.VocabSize() {
				t.Fatalf("id %d out of range [0,%d)", id, sp.VocabSize())
			}
		}
		_ = sp.Decode(append(ids, -1, 1<<30))
	})
}

// FuzzLoadHFTokenizer: arbitrary JSON gives an error or a working tokenizer.
func FuzzLoadHFTokenizer(f *testing.F) {
	addFixtureSeeds(f, "gpt2-tiny.json", "llama3-tiny.json", "llama2-tiny.json", "metaspace-tiny.json")
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := ParseHFTokenizer(b)
		if err != nil {
			return
		}
		ids := tok.Encode("Hello  wörld 123 <|endoftext|> 🙂\t")
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d out of range [0,%d)", id, tok.VocabSize())
			}
		}
		_ = tok.Decode(append(ids, -1, 1<<30))
	})
}
