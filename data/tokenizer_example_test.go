package data_test

import (
	"fmt"

	"github.com/minitron-dev/minitron/data"
)

func ExampleLoadTokenizer() {
	// A SentencePiece model trained by spm_train (make_golden.py); a
	// tokenizer.json or a model directory load the same way.
	tok, err := data.LoadTokenizer("testdata/tok/spm-bpe-fb.model")
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("Hello, wörld")
	fmt.Println(len(ids) > 0, tok.Decode(ids))
	// Encode adds no BOS/EOS; documents get them explicitly.
	doc := append(append([]int{tok.BOS()}, ids...), tok.EOS())
	fmt.Println(tok.Decode(doc))
	fmt.Println(tok.VocabSize(), tok.BOS(), tok.EOS(), tok.UNK())
	// Output:
	// true Hello, wörld
	// Hello, wörld
	// 800 1 2 0
}
