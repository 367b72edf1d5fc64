package distill

import (
	"math"
	"math/rand"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// The CPU engine with the head and the loss fused over chunks of tokens
// (EngineConfig.LogitChunk) against the whole logits, from the same weights
// and batches: each loss term of a training micro-batch and of a
// validation pass within 1e-6 relative, and each tensor's gradient within
// 1e-6 relative in norm (‖g_chunked − g‖ / ‖g‖; the head's weight gradient
// sums the chunks' products, a different order of the same additions). The
// chunks do not divide the 2×12 rows.
func TestCPUChunkedLogitsMatchWhole(t *testing.T) {
	for _, c := range []struct {
		name   string
		fam    string
		losses Losses
		chunk  int
		tied   bool
		reason string
	}{
		{"ce", "llama", Losses{CE: 1}, 5, false, "training from scratch: CE alone, chunks of 5, 5, 5, 5 and 4 rows"},
		{"ce-kl", "nemotron", Losses{CE: 0.5, KL: 1, Temperature: 2}, 7, false, "CE and forward KL at τ 2 from teacher logits made chunk by chunk"},
		{"kl-rkl-tied", "llama", Losses{KL: 1, ReverseKL: 0.5}, 10, true, "both KLs; a tied head whose gradient also gets the embedding's"},
		{"topk", "nemotron", Losses{CE: 1, KL: 1, TopK: 6}, 9, false, "the teacher's top-6 chosen chunk by chunk; validation adds the reverse KL"},
		{"intermediate", "llama", Losses{CE: 1, KL: 1, Intermediate: []LayerPair{{1, 1}, {2, 2}}}, 11, false, "the intermediate-state loss on layer 1 and the final norm beside chunked logits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyConfig(t, c.fam, 2, 32, 4, 2, 48, 300)
			cfg.TieWordEmbeddings = c.tied
			src := model.NewRandomSource(cfg, model.F32, 1)
			src.Std = 0.2
			tsrc := model.NewRandomSource(cfg, model.F32, 2)
			tsrc.Std = 0.2
			teacher, err := model.New(cfg, tsrc, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			arch, err := model.NewArch(cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			losses := c.losses
			losses.TeacherHidden = cfg.HiddenSize
			r := rand.New(rand.NewSource(3))
			var micro [2][][]int32
			for i := range micro {
				micro[i] = randomBatch(r, 2, 12, 300)
			}
			var parts, eval [2]Parts
			var grads [2]map[string][]float32
			for k, chunk := range []int{0, c.chunk} {
				e, err := NewEngine(device.CPU, EngineConfig{Arch: arch, Weights: src, Teacher: teacher, Batch: 2, Seq: 12,
					Losses: losses, Optim: DefaultOptim(), LogitChunk: chunk})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				// two micro-batches: the second adds to the step's gradient
				for i, mb := range micro {
					if parts[k], err = e.Micro(mb, i, len(micro)); err != nil {
						t.Fatal(err)
					}
				}
				grads[k] = map[string][]float32{}
				ce := e.(*cpuEngine)
				for j, p := range ce.s.Params {
					grads[k][p.Name] = append([]float32(nil), ce.grads[j]...)
				}
				if eval[k], err = e.Eval(micro[0]); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range [][2]float64{{parts[0].CE, parts[1].CE}, {parts[0].KL, parts[1].KL}, {parts[0].RKL, parts[1].RKL},
				{parts[0].IS, parts[1].IS}, {float64(parts[0].Loss), float64(parts[1].Loss)},
				{eval[0].CE, eval[1].CE}, {eval[0].KL, eval[1].KL}, {eval[0].RKL, eval[1].RKL}} {
				if math.Abs(p[0]-p[1]) > 1e-6*math.Abs(p[0]) {
					t.Errorf("losses %+v / eval %+v whole, %+v / %+v chunked", parts[0], eval[0], parts[1], eval[1])
					break
				}
			}
			if eval[0].RKL == 0 && c.name == "topk" {
				t.Errorf("validation with a teacher reports no reverse KL: %+v", eval[0])
			}
			for name, g := range grads[0] {
				var diff, norm float64
				for j, v := range g {
					dv := float64(grads[1][name][j]) - float64(v)
					diff += dv * dv
					norm += float64(v) * float64(v)
				}
				if rel := math.Sqrt(diff / norm); norm == 0 || rel > 1e-6 {
					t.Errorf("gradient of %s: relative difference %.3g chunked (norm² %g)", name, rel, norm)
				}
			}
		})
	}
}
