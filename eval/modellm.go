package eval

import (
	"fmt"
	"slices"
	"sync"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// ModelLM adapts a model.Model to LM. Score runs each shared context once
// into a KV cache and then each continuation after it (rewinding the cache
// between continuations), which gives the same numbers as a full forward
// pass over context+continuation at a fraction of the cost for
// multiple-choice items.
type ModelLM struct {
	M *model.Model
	// MaxLen is the window; 0 means the config's max_position_embeddings.
	MaxLen int
	// Workers runs up to this many requests at once (resident models
	// only; a streaming model serialises its forward passes anyway).
	Workers int
	// EOS are the ids generation stops on; nil means the model's EOS.
	EOS []int
}

// MaxLength implements LM.
func (a *ModelLM) MaxLength() int {
	if a.MaxLen > 0 {
		return a.MaxLen
	}
	if n := a.M.Cfg.MaxPositionEmbeddings; n > 0 {
		return n
	}
	return 2048
}

// Score implements LM.
func (a *ModelLM) Score(reqs []ScoreRequest) ([][]TokenScores, error) {
	out := make([][]TokenScores, len(reqs))
	workers := max(a.Workers, 1)
	if !a.M.Resident() {
		workers = 1
	}
	if workers == 1 || len(reqs) == 1 {
		for i, r := range reqs {
			s, err := a.scoreShared(r)
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	next := make(chan int)
	for w := 0; w < min(workers, len(reqs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = a.scoreShared(reqs[i])
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// logitBudget bounds the logits (floats) one scoring forward pass returns:
// 64M floats = 256 MiB, i.e. 256 positions of a 256k vocabulary.
var logitBudget = 64 << 20

// scoreShared runs the context once and each continuation after it.
func (a *ModelLM) scoreShared(r ScoreRequest) ([]TokenScores, error) {
	longest, err := r.check(a.MaxLength())
	if err != nil {
		return nil, err
	}
	kc, err := a.M.NewKVCache(1, len(r.Context)+longest-1)
	if err != nil {
		return nil, err
	}
	// The last context position predicts every continuation's first token.
	first, err := a.M.Forward([][]int{r.Context}, &model.ForwardOptions{Output: model.LastLogits, Cache: kc})
	if err != nil {
		return nil, err
	}
	V := a.M.Cfg.VocabSize
	out := make([]TokenScores, len(r.Continuations))
	for i, cont := range r.Continuations {
		s := TokenScores{LogProb: make([]float64, len(cont)), Greedy: make([]bool, len(cont))}
		s.LogProb[0], s.Greedy[0] = logProbAt(first, cont[0])
		kc.Len = len(r.Context) // rewind: drop the previous continuation
		// Feed cont[:-1] in chunks so the logits held at once stay near
		// logitBudget floats even with a 256k vocabulary.
		chunk := max(1, logitBudget/V)
		for s0 := 0; s0 < len(cont)-1; s0 += chunk {
			e := min(s0+chunk, len(cont)-1)
			lg, err := a.M.Forward([][]int{cont[s0:e]}, &model.ForwardOptions{Cache: kc})
			if err != nil {
				return nil, err
			}
			for t := s0 + 1; t <= e; t++ {
				s.LogProb[t], s.Greedy[t] = logProbAt(lg[(t-1-s0)*V:(t-s0)*V], cont[t])
			}
		}
		out[i] = s
	}
	return out, nil
}

// ScoreFull scores a continuation with one full forward pass over
// context+continuation (no cache): the reference the shared path must
// match, and what `eval nll` computes.
func (a *ModelLM) ScoreFull(ctx, cont []int) (TokenScores, error) {
	seq := append(slices.Clone(ctx), cont[:len(cont)-1]...)
	lg, err := a.M.Forward([][]int{seq}, nil)
	if err != nil {
		return TokenScores{}, err
	}
	V := a.M.Cfg.VocabSize
	s := TokenScores{LogProb: make([]float64, len(cont)), Greedy: make([]bool, len(cont))}
	for i := range cont {
		row := len(ctx) - 1 + i
		s.LogProb[i], s.Greedy[i] = logProbAt(lg[row*V:(row+1)*V], cont[i])
	}
	return s, nil
}

// logProbAt is log softmax(row)[id] and whether id is the (first)
// arg-max.
func logProbAt(row []float32, id int) (float64, bool) {
	l, arg := kernels.LogProbAt(row, id)
	return l, arg == id
}

// Generate implements LM: greedy decoding with a KV cache.
func (a *ModelLM) Generate(ctx []int, maxNew int, stop func(gen []int) bool) ([]int, error) {
	if len(ctx) == 0 {
		return nil, fmt.Errorf("generate: empty context")
	}
	if maxNew <= 0 {
		return nil, nil
	}
	eos := a.EOS
	if eos == nil {
		eos = a.M.EOS
	}
	kc, err := a.M.NewKVCache(1, len(ctx)+maxNew)
	if err != nil {
		return nil, err
	}
	row, err := a.M.Forward([][]int{ctx}, &model.ForwardOptions{Output: model.LastLogits, Cache: kc})
	if err != nil {
		return nil, err
	}
	var gen []int
	for {
		next := 0
		for j, v := range row {
			if v > row[next] {
				next = j
			}
		}
		if slices.Contains(eos, next) {
			break
		}
		gen = append(gen, next)
		if len(gen) >= maxNew || (stop != nil && stop(gen)) {
			break
		}
		if row, err = a.M.Forward([][]int{{next}}, &model.ForwardOptions{Output: model.LastLogits, Cache: kc}); err != nil {
			return nil, err
		}
	}
	return gen, nil
}

// Decode implements Decoder: Model.Generate with the LM's EOS ids unless
// opt names others.
func (a *ModelLM) Decode(prompt []int, opt model.GenerateOptions) (*model.GenerateResult, error) {
	if opt.EOS == nil {
		opt.EOS = a.EOS
	}
	return a.M.Generate(prompt, opt)
}
