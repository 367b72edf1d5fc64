package eval

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/minitron-dev/minitron/data"
)

// TokenScores are the per-token results of scoring one continuation.
type TokenScores struct {
	// LogProb[i] is log p(cont[i] | everything before it).
	LogProb []float64
	// Greedy[i] reports whether cont[i] is the arg-max prediction.
	Greedy []bool
}

// Sum is the continuation's total log-likelihood.
func (s TokenScores) Sum() float64 {
	var t float64
	for _, v := range s.LogProb {
		t += v
	}
	return t
}

// IsGreedy reports whether every token is the arg-max prediction.
func (s TokenScores) IsGreedy() bool {
	for _, g := range s.Greedy {
		if !g {
			return false
		}
	}
	return true
}

// ScoreRequest asks for the log-likelihood of each continuation after one
// shared context. Context is never empty (an empty context is replaced by
// the prefix token before it gets here).
type ScoreRequest struct {
	Context       []int
	Continuations [][]int
}

// check reports an empty context or continuation, or a request whose
// context+longest continuation−1 exceeds a window of maxLen tokens; it
// returns the longest continuation's length.
func (r ScoreRequest) check(maxLen int) (longest int, err error) {
	if len(r.Context) == 0 {
		return 0, fmt.Errorf("score: empty context")
	}
	for _, c := range r.Continuations {
		if len(c) == 0 {
			return 0, fmt.Errorf("score: empty continuation")
		}
		longest = max(longest, len(c))
	}
	if n := len(r.Context) + longest - 1; n > maxLen {
		return 0, fmt.Errorf("score: %d tokens exceed the %d-token window", n, maxLen)
	}
	return longest, nil
}

// LM is what eval needs from a causal language model.
type LM interface {
	// MaxLength is the longest token sequence one forward pass may take.
	MaxLength() int
	// Score returns, for each request and each of its continuations, the
	// token log-probabilities of the continuation after the context. The
	// result must equal a full forward pass over context+continuation;
	// implementations may run the shared context once (KV cache) and may
	// process several requests together.
	Score(reqs []ScoreRequest) ([][]TokenScores, error)
	// Generate continues ctx greedily for at most maxNew tokens and returns
	// the new tokens. It stops early after an end-of-sequence token (not
	// returned) or when stop(generated so far) reports true.
	Generate(ctx []int, maxNew int, stop func(gen []int) bool) ([]int, error)
}

// Encoder tokenizes requests the way lm-eval's HF model does: no special
// tokens added, and a prefix token (BOS, else EOS) standing in for an empty
// context.
type Encoder struct {
	Tok data.Tokenizer
}

// PrefixToken is lm-eval's prefix_token_id: BOS when the tokenizer has one,
// else EOS.
func (e Encoder) PrefixToken() (int, error) {
	if b := e.Tok.BOS(); b >= 0 {
		return b, nil
	}
	if x := e.Tok.EOS(); x >= 0 {
		return x, nil
	}
	return -1, fmt.Errorf("tokenizer has neither BOS nor EOS to condition the first token on")
}

// EncodePair tokenizes a log-likelihood request as lm-eval's _encode_pair:
// trailing whitespace of the context moves to the continuation, the whole
// string is encoded once and the continuation is what follows the separately
// encoded context, so merges across the boundary cannot shift tokens.
func (e Encoder) EncodePair(context, continuation string) (ctx, cont []int, err error) {
	if context == "" {
		p, err := e.PrefixToken()
		if err != nil {
			return nil, nil, err
		}
		return []int{p}, e.Tok.Encode(continuation), nil
	}
	trimmed := strings.TrimRightFunc(context, isPySpace)
	if n := len(context) - len(trimmed); n > 0 {
		continuation = context[len(trimmed):] + continuation
		context = trimmed
	}
	whole := e.Tok.Encode(context + continuation)
	ctx = e.Tok.Encode(context)
	if len(ctx) > len(whole) {
		return nil, nil, fmt.Errorf("context encodes to more tokens (%d) than context+continuation (%d)", len(ctx), len(whole))
	}
	return ctx, whole[len(ctx):], nil
}

// isPySpace is Python's str.isspace for one character: Unicode White_Space
// plus the ASCII separators \x1c-\x1f, which Python also strips.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// truncateLeft keeps the last max+1 tokens of ctx+cont, as lm-eval feeds
// (ctx+cont)[-(max+1):][:-1] to the model: the context loses its oldest
// tokens; a continuation that alone exceeds the window is an error.
func truncateLeft(ctx, cont []int, max int) ([]int, error) {
	if len(cont) > max {
		return nil, fmt.Errorf("continuation of %d tokens exceeds the model's %d-token window", len(cont), max)
	}
	if over := len(ctx) + len(cont) - (max + 1); over > 0 {
		ctx = ctx[over:]
	}
	return ctx, nil
}
