package distill

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// tinyConfig is a small architecture of the given family.
func tinyConfig(t testing.TB, family string, layers, hidden, heads, kv, ffn, vocab int) *model.Config {
	t.Helper()
	extra := `"norm_eps": 1e-5, "partial_rotary_factor": 0.5, "hidden_act": "relu2"`
	if family != "nemotron" {
		extra = `"rms_norm_eps": 1e-6, "hidden_act": "silu"`
	}
	js := fmt.Sprintf(`{"model_type": %q, "hidden_size": %d, "intermediate_size": %d, "num_hidden_layers": %d,
		"num_attention_heads": %d, "num_key_value_heads": %d, "vocab_size": %d, "max_position_embeddings": 512,
		"rope_theta": 10000, "tie_word_embeddings": false, %s}`, family, hidden, ffn, layers, heads, kv, vocab, extra)
	cfg, err := model.ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestStudent is a CPU training graph of cfg over src's weights.
func newTestStudent(cfg *model.Config, src model.TensorSource, batch, seq int, losses Losses) (*Student, error) {
	arch, err := model.NewArch(cfg, src)
	if err != nil {
		return nil, err
	}
	return newStudent(arch, src, batch, seq, losses, 0)
}

// The training graph's forward must be the inference forward: the CE of the
// student's logits equals the CE computed from model.Forward's logits.
func TestStudentMatchesInferenceForward(t *testing.T) {
	for _, fam := range []string{"nemotron", "llama"} {
		t.Run(fam, func(t *testing.T) {
			cfg := tinyConfig(t, fam, 2, 32, 4, 2, 48, 64)
			src := model.NewRandomSource(cfg, model.F32, 1)
			src.Std = 0.2
			s, err := newTestStudent(cfg, src, 2, 8, Losses{CE: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m, err := model.New(cfg, src, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			toks := randomBatch(rand.New(rand.NewSource(2)), 2, 8, 64)
			got, err := s.evalStep(toks)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([][]int, 2)
			for b := range ids {
				for _, v := range toks[b][:8] {
					ids[b] = append(ids[b], int(v))
				}
			}
			logits, err := m.Forward(ids, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want float64
			for r := 0; r < 16; r++ {
				row := logits[r*64 : (r+1)*64]
				mx := math.Inf(-1)
				for _, v := range row {
					mx = math.Max(mx, float64(v))
				}
				var z float64
				for _, v := range row {
					z += math.Exp(float64(v) - mx)
				}
				want += mx + math.Log(z) - float64(row[toks[r/8][r%8+1]])
			}
			want /= 16
			if math.Abs(float64(got)-want) > 1e-4 {
				t.Fatalf("student CE %.6f, inference forward CE %.6f", got, want)
			}
		})
	}
}

// Whole-model gradients against finite differences of the loss.
func TestStudentGradients(t *testing.T) {
	for _, tc := range []struct {
		fam    string
		losses Losses
		reason string
	}{
		{"nemotron", Losses{CE: 1}, "nemotron CE"},
		{"llama", Losses{CE: 0.5, KL: 1}, "llama CE+KL mix"},
		{"llama-tied", Losses{CE: 1}, "tied embeddings: the embedding's gradient sums both uses"},
	} {
		t.Run(tc.fam, func(t *testing.T) {
			fam := strings.TrimSuffix(tc.fam, "-tied")
			cfg := tinyConfig(t, fam, 2, 16, 4, 2, 24, 32)
			cfg.TieWordEmbeddings = strings.HasSuffix(tc.fam, "-tied")
			src := model.NewRandomSource(cfg, model.F32, 3)
			src.Std = 0.3
			s, err := newTestStudent(cfg, src, 2, 6, tc.losses)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewSource(5))
			toks := randomBatch(rng, 2, 6, 32)
			if tc.losses.NeedsTeacher() {
				s.st.teacher = randSlice(rng, 12*32, 2)
			}
			if _, err := s.trainStep(toks); err != nil {
				t.Fatal(err)
			}
			grads := map[string][]float32{}
			for _, p := range s.Params {
				grads[p.Name] = append([]float32(nil), p.Grad()...)
			}
			for _, p := range s.Params {
				for k := 0; k < 3; k++ {
					j := rng.Intn(len(p.Data))
					x0 := p.Data[j]
					h := float32(1e-2)
					p.Data[j] = x0 + h
					lp, _ := s.evalStep(toks)
					p.Data[j] = x0 - h
					lm, _ := s.evalStep(toks)
					p.Data[j] = x0
					num := float64(lp-lm) / float64(2*h)
					an := float64(grads[p.Name][j])
					if math.Abs(num-an) > 2e-2*(1+math.Abs(num))+2e-3 {
						t.Errorf("%s: %s[%d]: analytic %.6g, finite difference %.6g", tc.reason, p.Name, j, an, num)
					}
				}
			}
		})
	}
}
