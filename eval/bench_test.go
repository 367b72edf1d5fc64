package eval

import (
	"math/rand"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// benchLM is a small llama (H 256, 4 layers, vocab 4096) with random weights.
func benchLM(b *testing.B) *ModelLM {
	cfg, err := model.ParseConfig([]byte(`{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 8,
  "num_key_value_heads": 4, "vocab_size": 4096, "max_position_embeddings": 1024,
  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}`))
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.New(cfg, model.NewRandomSource(cfg, model.F32, 1), model.Options{Weights: model.WeightsResident})
	if err != nil {
		b.Fatal(err)
	}
	return &ModelLM{M: m}
}

// hellaswagShaped returns n items of a 120-token context and four 24-token
// endings, about the shape of a HellaSwag item.
func hellaswagShaped(n int) []ScoreRequest {
	r := rand.New(rand.NewSource(1))
	toks := func(k int) []int {
		s := make([]int, k)
		for i := range s {
			s[i] = 3 + r.Intn(4000)
		}
		return s
	}
	var reqs []ScoreRequest
	for i := 0; i < n; i++ {
		q := ScoreRequest{Context: toks(120)}
		for c := 0; c < 4; c++ {
			q.Continuations = append(q.Continuations, toks(24))
		}
		reqs = append(reqs, q)
	}
	return reqs
}

// BenchmarkChoiceScoring compares running each shared context once (KV
// cache, the default) with one full forward pass per choice (what lm-eval's
// HF backend does) on HellaSwag-shaped items. Report the ratio of ns/op.
func BenchmarkChoiceScoring(b *testing.B) {
	lm := benchLM(b)
	reqs := hellaswagShaped(4)
	b.Run("shared-context", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := lm.Score(reqs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("full-forward-per-choice", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, q := range reqs {
				for _, c := range q.Continuations {
					if _, err := lm.ScoreFull(q.Context, c); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
}
