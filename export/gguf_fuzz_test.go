package export

import (
	"bytes"
	"os"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// FuzzParseGGUF: the test reader never panics or over-allocates on any
// input, and what it accepts is self-consistent (every tensor's data lies
// inside the file at an aligned offset). Seeds: a small valid file written
// by writeGGUF, and truncations of it.
func FuzzParseGGUF(f *testing.F) {
	var buf bytes.Buffer
	kvs := []kv{kvString("general.architecture", "llama"), kvU32("general.alignment", ggufAlignment),
		kvF32s("a.f", []float32{1, 2}), kvI32s("a.i", []int32{-1}), kvStrings("a.s", []string{"x", ""}), kvBool("a.b", true)}
	ts := []*ggufTensor{
		{name: "w", shape: []int{2, 32}, typ: ggmlQ8_0, read: func(int, []float32) error { return nil }},
		{name: "b", shape: []int{3}, typ: ggmlF32, read: func(int, []float32) error { return nil }},
		{name: "h", shape: []int{5}, typ: ggmlF16, read: func(int, []float32) error { return nil }},
	}
	if _, err := writeGGUF(&buf, kvs, ts, func() error { return nil }); err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	if _, err := parseGGUF(good); err != nil {
		f.Fatalf("the writer's own file: %v", err)
	}
	f.Add(good)
	for _, n := range []int{0, 4, 8, 24, 60, len(good) / 2, len(good) - 1} {
		f.Add(good[:n])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGGUF(b)
		if err != nil {
			return
		}
		for _, ti := range g.tensors {
			if ti.off%g.align != 0 || g.dataOff+ti.off+ti.bytes() > int64(len(b)) {
				t.Fatalf("accepted tensor %s outside the file or unaligned", ti.name)
			}
			if _, err := g.f32(ti.name); err != nil {
				t.Fatalf("accepted tensor %s does not decode: %v", ti.name, err)
			}
		}
	})
}

// FuzzGGUFTokenizerJSON: any tokenizer.json is refused with an error or
// becomes a vocabulary of exactly vocab_size tokens, never a panic.
func FuzzGGUFTokenizerJSON(f *testing.F) {
	for _, n := range []string{"gpt2-tiny.json", "llama3-tiny.json", "llama2-tiny.json", "metaspace-tiny.json"} {
		b, err := os.ReadFile("../data/testdata/tok/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cfg := &model.Config{VocabSize: 300, BOSTokenID: -1}
	f.Fuzz(func(t *testing.T, b []byte) {
		specials := func() (*data.HFTokenizer, error) { return data.ParseHFTokenizer(b) }
		v, byteLevel, err := gpt2Vocab(b, "tokenizer.json", cfg, specials)
		if err == nil && !byteLevel {
			v, err = spmJSONVocab(b, "tokenizer.json", cfg, specials)
		}
		if err != nil {
			return
		}
		for _, e := range v.kvs {
			if e.key == "tokenizer.ggml.tokens" && len(e.val.([]string)) != cfg.VocabSize {
				t.Fatalf("%d tokens for vocab_size %d", len(e.val.([]string)), cfg.VocabSize)
			}
		}
	})
}
