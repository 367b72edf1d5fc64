package eval

import (
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func TestCountWords(t *testing.T) {
	cases := []struct {
		reason, doc string
		want        int
	}{
		{"plain", "a b c", 3},
		{"leading and trailing whitespace add empty fields like re.split", " a b\n", 4},
		{"runs of mixed whitespace are one separator", "a \t\n b", 2},
		{"no-break space is whitespace in Python", "a\u00a0b", 2},
		{"empty", "", 1},
	}
	for _, c := range cases {
		if got := CountWords(c.doc); got != c.want {
			t.Errorf("%s: %d want %d", c.reason, got, c.want)
		}
	}
}

// TestTextPerplexityMatchesFullForward checks the rolling-window sum against
// one full forward pass when the text fits one window, and that shorter
// strides only add context (every token still counted once).
func TestTextPerplexityMatchesFullForward(t *testing.T) {
	lm, tok := loadTiny(t)
	enc := Encoder{Tok: tok}
	doc := "The cat sat on the mat. It was a warm day, and the cat slept in the sun."
	ids := tok.Encode(doc)
	if len(ids) < 40 {
		t.Fatalf("want a longer document, got %d tokens", len(ids))
	}
	pfx, err := enc.PrefixToken()
	if err != nil {
		t.Fatal(err)
	}
	seq := append([]int{pfx}, ids...)
	lg, err := lm.M.Forward([][]int{seq}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nll, _, _ := model.SequenceNLL(lg, seq)
	var want float64
	for _, v := range nll {
		want -= v
	}
	one, err := TextPerplexity(lm, enc, []string{doc}, PPLOptions{SeqLen: 128, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if one.Windows != 1 || one.Tokens != len(ids) || math.Abs(one.LogLik-want) > 1e-4 {
		t.Errorf("one window: %d windows %d tokens ll %.6f, want 1 %d %.6f", one.Windows, one.Tokens, one.LogLik, len(ids), want)
	}
	if one.Words != 18 || one.Bytes != len(doc) {
		t.Errorf("words %d bytes %d", one.Words, one.Bytes)
	}
	if got := math.Exp(-one.LogLik / 18); math.Abs(one.WordPerplexity-got)/got > 1e-12 {
		t.Errorf("word ppl %v want %v", one.WordPerplexity, got)
	}
	if bpb := -one.LogLik / float64(len(doc)) / math.Ln2; math.Abs(one.BitsPerByte-bpb) > 1e-12 {
		t.Errorf("bpb %v want %v", one.BitsPerByte, bpb)
	}
	cases := []struct {
		reason         string
		seqLen, stride int
		windows        int
	}{
		{"disjoint windows of 16", 16, 0, (len(ids) + 15) / 16},
		{"stride 8 in 16", 16, 8, 1 + (len(ids)-16+7)/8},
		{"stride 1", 16, 1, 1 + len(ids) - 16},
	}
	for _, c := range cases {
		r, err := TextPerplexity(lm, enc, []string{doc}, PPLOptions{SeqLen: c.seqLen, Stride: c.stride, Batch: 4})
		if err != nil {
			t.Fatal(err)
		}
		if r.Windows != c.windows || r.Tokens != len(ids) {
			t.Errorf("%s: %d windows %d tokens, want %d %d", c.reason, r.Windows, r.Tokens, c.windows, len(ids))
		}
		if !(r.TokenLoss > 0) || math.IsInf(r.TokenPerplexity, 0) {
			t.Errorf("%s: loss %v", c.reason, r.TokenLoss)
		}
	}
	// Token documents with a leading prefix token score the same.
	tr, err := TokenPerplexity(lm, [][]int{seq}, pfx, PPLOptions{SeqLen: 128})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(tr.LogLik-want) > 1e-4 || tr.Tokens != len(ids) {
		t.Errorf("token ppl ll %.6f (%d tokens), want %.6f", tr.LogLik, tr.Tokens, want)
	}
	for _, o := range []PPLOptions{{SeqLen: 0}, {SeqLen: 16, Stride: 17}, {SeqLen: 100000}} {
		if _, err := TextPerplexity(lm, enc, []string{doc}, o); err == nil || !strings.Contains(err.Error(), "ppl:") {
			t.Errorf("options %+v: error %v", o, err)
		}
	}
}
