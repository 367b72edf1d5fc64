package data

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"unicode/utf8"
)

// goSrc returns up to maxBytes of the Go installation's .go files (all of
// them when maxBytes <= 0), skipping invalid UTF-8; every stride-th file.
func goSrc(t testing.TB, maxBytes, stride int) []string {
	t.Helper()
	files, err := BuiltinFiles(BuiltinGoSrc)
	if err != nil {
		t.Skip(err)
	}
	var out []string
	total := 0
	for i := 0; i < len(files); i += stride {
		b, err := os.ReadFile(files[i])
		if err != nil || !utf8.Valid(b) {
			continue
		}
		out = append(out, string(b))
		total += len(b)
		if maxBytes > 0 && total >= maxBytes {
			break
		}
	}
	return out
}

var goTok struct {
	once    sync.Once
	trained *TrainedBPE
	tok     *HFTokenizer
	err     error
}

// goTokenizer is a 4k byte-level BPE trained on ~2 MB of Go source.
func goTokenizer(t testing.TB) *HFTokenizer {
	goTok.once.Do(func() {
		texts := goSrc(t, 2<<20, 7)
		r, err := TrainBPE(slices.Values(texts), TrainOptions{VocabSize: 4096})
		if err != nil {
			goTok.err = err
			return
		}
		goTok.trained = r
		goTok.tok, goTok.err = r.Tokenizer()
	})
	if goTok.err != nil {
		t.Fatal(goTok.err)
	}
	return goTok.tok
}

// TestByteLevelRoundTripGoCorpus: decode(encode(x)) == x on every .go file
// of the Go installation (a 1 MB sample with -short).
func TestByteLevelRoundTripGoCorpus(t *testing.T) {
	tok := goTokenizer(t)
	max, stride := 0, 1
	if testing.Short() {
		max, stride = 1<<20, 13
	}
	files := goSrc(t, max, stride)
	var bytes, ids int
	for _, text := range files {
		enc := tok.Encode(text)
		if got := tok.Decode(enc); got != text {
			i := 0
			for i < len(got) && i < len(text) && got[i] == text[i] {
				i++
			}
			t.Fatalf("round trip differs at byte %d: %q vs %q", i, got[i:min(i+40, len(got))], text[i:min(i+40, len(text))])
		}
		bytes += len(text)
		ids += len(enc)
	}
	t.Logf("%d files, %.1f MB, %.2f bytes/token", len(files), float64(bytes)/1e6, float64(bytes)/float64(ids))
}

// The same trained vocabulary written with the Llama-3 split must also
// round-trip (the Split+ByteLevel pipeline).
func TestByteLevelRoundTripLlama3Pattern(t *testing.T) {
	texts := goSrc(t, 300<<10, 31)
	r, err := TrainBPE(slices.Values(texts), TrainOptions{VocabSize: 1024, Pattern: "llama3"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := r.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range append(texts, "x  \n\n\t 12345 ٣٤ 'LL") {
		if got := tok.Decode(tok.Encode(text)); got != text {
			t.Fatalf("llama3 round trip failed for %.60q", text)
		}
	}
}

func benchEncode(b *testing.B, tok Tokenizer, texts []string) {
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range texts {
			tok.Encode(t)
		}
	}
}

// BenchmarkEncodeByteLevelGo: MB/s of a 4k byte-level BPE on Go source,
// one goroutine (the word cache is warm after the first iteration).
func BenchmarkEncodeByteLevelGo(b *testing.B) {
	benchEncode(b, goTokenizer(b), goSrc(b, 4<<20, 5))
}

// BenchmarkEncodeByteLevelGoCold: the same with an empty word cache each
// pass, the cost of text never seen before.
func BenchmarkEncodeByteLevelGoCold(b *testing.B) {
	tok := goTokenizer(b)
	texts := goSrc(b, 4<<20, 5)
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok.cache = wordCache{}
		for _, t := range texts {
			tok.Encode(t)
		}
	}
}

func BenchmarkEncodeSentencePieceBPE(b *testing.B) {
	tok, err := LoadTokenizer(filepath.Join("testdata", "tok", "spm-bpe-fb.model"))
	if err != nil {
		b.Fatal(err)
	}
	benchEncode(b, tok, goSrc(b, 1<<20, 5))
}

func BenchmarkEncodeSentencePieceUnigram(b *testing.B) {
	tok, err := LoadTokenizer(filepath.Join("testdata", "tok", "spm-uni.model"))
	if err != nil {
		b.Fatal(err)
	}
	benchEncode(b, tok, goSrc(b, 1<<20, 5))
}

// BenchmarkTrainBPE8k: 8k vocab on ~20 MB of Go source.
func BenchmarkTrainBPE8k(b *testing.B) {
	texts := goSrc(b, 20<<20, 1)
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := TrainBPE(slices.Values(texts), TrainOptions{VocabSize: 8192}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestByteLevelFastPath: the fast path (raw pieces key the cache) gives the
// ids of the general pipeline.
func TestByteLevelFastPath(t *testing.T) {
	texts := append(goSrc(t, 300<<10, 17), "<|endoftext|>x  \n\n\t 12345 ٣٤ 'LL🙂")
	for _, name := range []string{"gpt2-tiny.json", "llama3-tiny.json", "trained"} {
		load := func() *HFTokenizer {
			if name == "trained" {
				goTokenizer(t)
				tok, err := goTok.trained.Tokenizer()
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			return loadFixture(t, name).(*HFTokenizer)
		}
		tok, slow := load(), load()
		if !tok.fast {
			t.Fatalf("%s: expected the fast path", name)
		}
		slow.fast = false
		for _, text := range texts {
			if a, b := tok.Encode(text), slow.Encode(text); !slices.Equal(a, b) {
				t.Fatalf("%s: fast and general paths differ on %.80q", name, text)
			}
		}
	}
}
