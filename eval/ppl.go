package eval

import (
	"fmt"
	"math"
	"regexp"
	"unicode/utf8"
)

// PPLOptions choose the rolling windows of a perplexity run.
type PPLOptions struct {
	// SeqLen is the window length in tokens (the model's input size).
	SeqLen int
	// Stride is how many new tokens each window after the first predicts;
	// 0 or SeqLen gives lm-eval's disjoint windows, smaller strides give
	// every prediction up to SeqLen-Stride tokens of extra context.
	Stride int
	// Batch is how many windows go to one LM.Score call.
	Batch int
	// Progress, when set, is called after each LM.Score call with the
	// windows scored so far and their total.
	Progress func(done, total int64)
}

func (o PPLOptions) check(lm LM) (contextLen int, err error) {
	if o.SeqLen < 1 {
		return 0, fmt.Errorf("ppl: SeqLen must be positive, got %d", o.SeqLen)
	}
	if o.SeqLen > lm.MaxLength() {
		return 0, fmt.Errorf("ppl: SeqLen %d exceeds the model's %d-token window", o.SeqLen, lm.MaxLength())
	}
	s := o.Stride
	if s == 0 {
		s = o.SeqLen
	}
	if s < 1 || s > o.SeqLen {
		return 0, fmt.Errorf("ppl: Stride %d must be in [1, SeqLen %d]", o.Stride, o.SeqLen)
	}
	return o.SeqLen - s + 1, nil
}

// PPLResult is a perplexity measurement. The token figures always exist;
// the word and byte figures only for text input.
type PPLResult struct {
	Source  string  `json:"source"`
	SeqLen  int     `json:"seq_len"`
	Stride  int     `json:"stride"`
	Docs    int     `json:"docs"`
	Windows int     `json:"windows"`
	Tokens  int     `json:"tokens"`
	Words   int     `json:"words,omitempty"`
	Bytes   int     `json:"bytes,omitempty"`
	LogLik  float64 `json:"loglik"`
	// TokenLoss is the mean negative log-likelihood per token (nats).
	TokenLoss       float64 `json:"token_loss"`
	TokenPerplexity float64 `json:"token_perplexity"`
	// lm-eval's wikitext metrics: exp(−LL/words), exp(−LL/bytes) and
	// −LL/bytes/ln 2.
	WordPerplexity float64 `json:"word_perplexity,omitempty"`
	BytePerplexity float64 `json:"byte_perplexity,omitempty"`
	BitsPerByte    float64 `json:"bits_per_byte,omitempty"`
}

// wordSplit counts words as lm-eval does: len(re.split(r"\s+", doc)), with
// Python's Unicode notion of whitespace.
var wordSplit = regexp.MustCompile(`[\s\v\p{Z}\x1c-\x1f\x85]+`)

// CountWords is lm-eval's word count of a document.
func CountWords(doc string) int { return len(wordSplit.Split(doc, -1)) }

// TextPerplexity scores each document with lm-eval's loglikelihood_rolling
// (the prefix token, then rolling windows) and reports token, word and byte
// perplexities over all of them.
func TextPerplexity(lm LM, enc Encoder, docs []string, o PPLOptions) (*PPLResult, error) {
	prefix, err := enc.PrefixToken()
	if err != nil {
		return nil, err
	}
	toks := make([][]int, len(docs))
	res := &PPLResult{}
	for i, d := range docs {
		if !utf8.ValidString(d) {
			return nil, fmt.Errorf("ppl: document %d is not valid UTF-8", i+1)
		}
		toks[i] = enc.Tok.Encode(d)
		res.Words += CountWords(d)
		res.Bytes += len(d)
	}
	if err := tokenPerplexity(lm, toks, func([]int) int { return prefix }, o, res); err != nil {
		return nil, err
	}
	res.WordPerplexity = math.Exp(-res.LogLik / float64(res.Words))
	res.BytePerplexity = math.Exp(-res.LogLik / float64(res.Bytes))
	res.BitsPerByte = -res.LogLik / float64(res.Bytes) / math.Ln2
	return res, nil
}

// TokenPerplexity scores token documents (e.g. from a Megatron dataset).
// A document that starts with prefix uses that token as its condition
// instead of predicting it; others get prefix prepended, as lm-eval does.
func TokenPerplexity(lm LM, docs [][]int, prefix int, o PPLOptions) (*PPLResult, error) {
	res := &PPLResult{}
	trimmed := make([][]int, len(docs))
	for i, d := range docs {
		trimmed[i] = d
		if len(d) > 0 && d[0] == prefix {
			trimmed[i] = d[1:]
		}
	}
	if err := tokenPerplexity(lm, trimmed, func([]int) int { return prefix }, o, res); err != nil {
		return nil, err
	}
	return res, nil
}

func tokenPerplexity(lm LM, docs [][]int, prefixOf func([]int) int, o PPLOptions, res *PPLResult) error {
	ctxLen, err := o.check(lm)
	if err != nil {
		return err
	}
	res.SeqLen = o.SeqLen
	res.Stride = o.SeqLen - ctxLen + 1
	var wins []Window
	for _, d := range docs {
		if len(d) == 0 {
			continue
		}
		res.Docs++
		wins = append(wins, RollingWindows(d, prefixOf(d), o.SeqLen, ctxLen)...)
	}
	if len(wins) == 0 {
		return fmt.Errorf("ppl: no tokens to score")
	}
	res.Windows = len(wins)
	prog := &progressCounter{fn: o.Progress, total: int64(len(wins))}
	batch := max(o.Batch, 1)
	for s := 0; s < len(wins); s += batch {
		e := min(s+batch, len(wins))
		reqs := make([]ScoreRequest, 0, e-s)
		for _, w := range wins[s:e] {
			reqs = append(reqs, ScoreRequest{Context: w.Context, Continuations: [][]int{w.Pred}})
		}
		out, err := lm.Score(reqs)
		if err != nil {
			return err
		}
		for i := range reqs {
			res.LogLik += out[i][0].Sum()
			res.Tokens += len(reqs[i].Continuations[0])
		}
		prog.add(e - s)
	}
	res.TokenLoss = -res.LogLik / float64(res.Tokens)
	res.TokenPerplexity = math.Exp(res.TokenLoss)
	return nil
}
