package distill

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// TestAgainstPyTorchReference checks a whole tiny model's loss and every
// parameter gradient (biases and q/k norms included) against PyTorch
// (float64) for a fixed batch:
// testdata/make_reference.py writes the checkpoints and the expected values.
func TestAgainstPyTorchReference(t *testing.T) {
	for _, tc := range []struct {
		family string
		reason string
	}{
		{"nemotron", "LayerNorm1P with bias, partial RoPE, relu², GQA"},
		{"llama", "RMSNorm, full RoPE, SwiGLU, GQA"},
		{"mistral", "llama math with a sliding window of 4"},
		{"qwen2", "q/k/v biases trained, o_proj without, tied embeddings, GQA"},
		{"qwen3", "q_norm/k_norm over head_dim 16 (≠ hidden/heads) before RoPE, GQA"},
		{"llama-bias", "attention_bias and mlp_bias: every projection, o_proj and the MLP's included, has a bias"},
	} {
		t.Run(tc.family, func(t *testing.T) {
			dir := filepath.Join("testdata", "ref-"+tc.family)
			ck, err := model.OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			ref, err := model.OpenSafetensors(filepath.Join(dir, "reference.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			read := func(name string) []float32 {
				info, ok := ref.Info(name)
				if !ok {
					t.Fatalf("reference lacks %q", name)
				}
				d := make([]float32, info.NumElements())
				if err := ref.ReadF32(name, d); err != nil {
					t.Fatal(err)
				}
				return d
			}
			tokInfo, _ := ref.Info("tokens")
			B, T1 := tokInfo.Shape[0], tokInfo.Shape[1]
			flat := read("tokens")
			toks := make([][]int32, B)
			for b := range toks {
				for i := 0; i < T1; i++ {
					toks[b] = append(toks[b], int32(flat[b*T1+i]))
				}
			}
			for _, lc := range []struct {
				key    string
				losses Losses
			}{
				{"ce", Losses{CE: 1}},
				{"mix", Losses{CE: 0.5, KL: 1, Temperature: 2}},
			} {
				s, err := newTestStudent(ck.Config(), ck, B, T1-1, lc.losses)
				if err != nil {
					t.Fatal(err)
				}
				if lc.losses.KL != 0 {
					s.st.teacher = read("teacher_logits")
				}
				loss, err := s.trainStep(toks)
				if err != nil {
					t.Fatal(err)
				}
				want := float64(read("loss_" + lc.key)[0])
				if math.Abs(float64(loss)-want) > 2e-5*math.Abs(want) {
					t.Errorf("%s (%s): loss %.7f, PyTorch %.7f", lc.key, tc.reason, loss, want)
				}
				for _, p := range s.Params {
					g, w := p.Grad(), read("grad_"+lc.key+"."+p.Name)
					var maxAbs, maxDiff float64
					for i := range w {
						maxAbs = math.Max(maxAbs, math.Abs(float64(w[i])))
						maxDiff = math.Max(maxDiff, math.Abs(float64(g[i]-w[i])))
					}
					if maxDiff > 1e-4*maxAbs+1e-7 {
						t.Errorf("%s (%s): grad %s differs by %.3g (max |grad| %.3g)", lc.key, tc.reason, p.Name, maxDiff, maxAbs)
					}
				}
				s.Close()
			}
		})
	}
}
