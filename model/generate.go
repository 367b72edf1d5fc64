package model

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
)

// GenerateOptions controls Generate. The zero value (apart from
// MaxNewTokens) is greedy decoding that stops on the model's EOS ids.
type GenerateOptions struct {
	// MaxNewTokens caps how many tokens are generated (> 0).
	MaxNewTokens int
	// Temperature divides the logits before sampling; 0 means greedy
	// (argmax, ties to the lowest id), and TopK/TopP must then be unset.
	Temperature float64
	// TopK keeps only the k most likely tokens when sampling (0 = all).
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches p when sampling (0 or ≥1 = all).
	TopP float64
	// Seed seeds the sampler, so a run is reproducible.
	Seed int64
	// EOS overrides the ids that stop generation; nil means Model.EOS. An
	// empty non-nil slice never stops early.
	EOS []int
	// OnToken, when set, sees each new token as it is chosen; returning
	// false stops generation.
	OnToken func(id int) bool
}

// GenerateResult is what Generate produced.
type GenerateResult struct {
	// Tokens are the new tokens (the EOS token included when it stopped
	// generation).
	Tokens []int
	// StoppedOnEOS reports whether an EOS token ended generation.
	StoppedOnEOS bool
}

// Check reports an empty prompt or settings Generate cannot run (the
// device decoder, eval.DeviceLM.Decode, checks the same).
func (opt GenerateOptions) Check(prompt []int) error {
	if len(prompt) == 0 {
		return fmt.Errorf("generate: empty prompt")
	}
	if opt.MaxNewTokens <= 0 {
		return fmt.Errorf("generate: max new tokens must be positive, got %d", opt.MaxNewTokens)
	}
	if opt.Temperature < 0 || math.IsNaN(opt.Temperature) || math.IsInf(opt.Temperature, 0) {
		return fmt.Errorf("generate: temperature must be finite and ≥ 0, got %v", opt.Temperature)
	}
	if opt.TopK < 0 || opt.TopP < 0 || math.IsNaN(opt.TopP) {
		return fmt.Errorf("generate: TopK and TopP must be ≥ 0")
	}
	// Temperature 0 is greedy decoding (documented); filters given with it
	// would be ignored without a word, so they are refused.
	if opt.Temperature == 0 && (opt.TopK > 0 || (opt.TopP > 0 && opt.TopP < 1)) {
		return fmt.Errorf("generate: TopK %d and TopP %v filter sampling, but Temperature 0 is greedy decoding: give a Temperature > 0 to sample", opt.TopK, opt.TopP)
	}
	return nil
}

// Generate extends prompt with up to opt.MaxNewTokens tokens, using a KV
// cache: the prompt runs once, then each step is a one-token forward pass.
func (m *Model) Generate(prompt []int, opt GenerateOptions) (*GenerateResult, error) {
	if err := opt.Check(prompt); err != nil {
		return nil, err
	}
	eos := opt.EOS
	if eos == nil {
		eos = m.EOS
	}
	if n := len(prompt) + opt.MaxNewTokens; n > m.Cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("generate: a prompt of %d tokens and MaxNewTokens %d exceed MaxPositionEmbeddings %d (config.json max_position_embeddings)",
			len(prompt), opt.MaxNewTokens, m.Cfg.MaxPositionEmbeddings)
	}
	kc, err := m.NewKVCache(1, len(prompt)+opt.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewSource(opt.Seed))
	res := &GenerateResult{}
	fo := &ForwardOptions{Output: LastLogits, Cache: kc}
	logits, err := m.Forward([][]int{prompt}, fo)
	if err != nil {
		return nil, err
	}
	for {
		// NaN logits would make the arg-max token 0 at every step.
		if !finite32(logits) {
			return nil, m.ExplainNonFinite("logits")
		}
		next := SampleToken(logits, opt.Temperature, opt.TopK, opt.TopP, rng)
		res.Tokens = append(res.Tokens, next)
		if slices.Contains(eos, next) {
			res.StoppedOnEOS = true
			if opt.OnToken != nil {
				opt.OnToken(next)
			}
			return res, nil
		}
		if opt.OnToken != nil && !opt.OnToken(next) {
			return res, nil
		}
		if len(res.Tokens) == opt.MaxNewTokens {
			return res, nil
		}
		if logits, err = m.Forward([][]int{{next}}, fo); err != nil {
			return nil, err
		}
	}
}

// SampleToken picks a token from one row of logits: argmax when temperature
// is 0, else a draw from softmax(logits/temperature) restricted to the topK
// most likely tokens and then to the top-p nucleus (transformers' order).
func SampleToken(logits []float32, temperature float64, topK int, topP float64, rng *rand.Rand) int {
	if temperature == 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return best
	}
	idx := make([]int, len(logits))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
	if topK > 0 && topK < len(idx) {
		idx = idx[:topK]
	}
	p := make([]float64, len(idx))
	mx := float64(logits[idx[0]]) / temperature
	var z float64
	for i, id := range idx {
		p[i] = math.Exp(float64(logits[id])/temperature - mx)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
	if topP > 0 && topP < 1 {
		var cum float64
		for i := range p {
			cum += p[i]
			if cum >= topP {
				p, idx = p[:i+1], idx[:i+1]
				break
			}
		}
		z = 0
		for _, v := range p {
			z += v
		}
		for i := range p {
			p[i] /= z
		}
	}
	u := rng.Float64()
	for i, v := range p {
		u -= v
		if u < 0 {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}
