package distill

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// biasedConfig is a tiny config with trained extras beyond the norms:
// "qwen2" (q/k/v biases, no o_proj bias, tied embeddings, GQA), "qwen3"
// (q/k norms over an explicit head_dim 16 ≠ hidden/heads, GQA) or
// "llama-bias" (attention_bias and mlp_bias: every projection biased).
func biasedConfig(t testing.TB, name string) *model.Config {
	t.Helper()
	fam := strings.TrimSuffix(name, "-bias")
	cfg := tinyConfig(t, fam, 2, 32, 4, 2, 48, 64)
	switch name {
	case "qwen2":
		cfg.TieWordEmbeddings = true
	case "qwen3":
		cfg.HeadDim = 16
	case "llama-bias":
		cfg.AttentionBias, cfg.MLPBias = true, true
	default:
		t.Fatalf("no biased config %q", name)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// biasRunConfig is a 20-step distillation (CE 0.5 + KL at τ 2 from a
// random teacher of the same architecture) of a randomly initialised
// biasedConfig student on dev; the same on every device.
func biasRunConfig(t testing.TB, name string, dev device.Kind, out string) (Config, *[]StepMetrics) {
	t.Helper()
	cfg := biasedConfig(t, name)
	teacher, err := model.New(cfg, model.NewRandomSource(cfg, model.F32, 21), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { teacher.Close() })
	src := corpus(4, 20, 200, 64)
	var ms []StepMetrics
	return Config{StudentConfig: cfg, RandomInit: true, Teacher: teacher, Losses: Losses{CE: 0.5, KL: 1, Temperature: 2},
		Train: sampler(t, src, 16, 3), SeqLen: 16, MicroBatch: 2, Steps: 20, LR: 3e-3, MinLR: 1e-4, Warmup: 2,
		WeightDecay: 0.01, Clip: 1, Seed: 9, Out: out, Device: dev,
		OnStep: func(m StepMetrics) { ms = append(ms, m) }}, &ms
}

// A 20-step distillation of each biased architecture on the CPU: the loss
// falls, and every bias and q/k norm weight was trained (moved from its
// initial value) and written to the checkpoint.
func TestDistillTrainsBiasesAndQKNorms(t *testing.T) {
	for _, tc := range []struct{ name, reason string }{
		{"qwen2", "q/k/v biases, o_proj without one, tied embeddings"},
		{"qwen3", "q_norm/k_norm over head_dim 16"},
		{"llama-bias", "attention_bias and mlp_bias"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ms := biasRunConfig(t, tc.name, "cpu", t.TempDir())
			res, err := Run(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if len(*ms) != 20 {
				t.Fatalf("%d steps, want 20", len(*ms))
			}
			var losses []float64
			for _, m := range *ms {
				losses = append(losses, m.Loss)
			}
			first, last := mean(losses[:5]), mean(losses[15:])
			t.Logf("%s: loss first 5 steps %.4f, last 5 %.4f", tc.reason, first, last)
			if math.IsNaN(last) || !(last < first) {
				t.Errorf("%s: loss did not fall: first %.4f, last %.4f", tc.reason, first, last)
			}
			ck, err := model.OpenCheckpoint(res.Checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			init := model.NewRandomSource(c.StudentConfig, model.F32, c.Seed)
			arch, err := model.NewArch(c.StudentConfig, init)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for l := 0; l < c.StudentConfig.NumLayers; l++ {
				w := arch.Layer(l)
				for _, name := range []string{w.QBias, w.KBias, w.VBias, w.OBias, w.QNorm, w.KNorm, w.GateBias, w.UpBias, w.DownBias} {
					if name == "" {
						continue
					}
					n++
					info, ok := ck.Info(name)
					if !ok {
						t.Errorf("%s: checkpoint lacks %s", tc.reason, name)
						continue
					}
					got, want := make([]float32, info.NumElements()), make([]float32, info.NumElements())
					if err := ck.ReadF32(name, got); err != nil {
						t.Fatal(err)
					}
					if err := init.ReadF32(name, want); err != nil {
						t.Fatal(err)
					}
					moved := 0.0
					for i := range got {
						moved = math.Max(moved, math.Abs(float64(got[i]-want[i])))
					}
					// AdamW moves a trained weight by about lr per step
					if moved < c.MinLR {
						t.Errorf("%s: %s moved by %.3g in 20 steps: not trained", tc.reason, name, moved)
					}
				}
			}
			if n == 0 {
				t.Fatalf("%s: the config has no biases or q/k norms", tc.reason)
			}
		})
	}
}
