//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
)

// roundBF16 is float32 → bfloat16 → float32 with round-to-nearest-even
// (the rounding of cuda.Device.ToBF16), for finite values.
func roundBF16(x float32) float32 {
	b := math.Float32bits(x)
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// roundedEmbedding is a source whose embedding table reads back rounded
// to bf16: an f32 model of it looks up the rows a bf16 store holds.
type roundedEmbedding struct{ model.TensorSource }

func (r roundedEmbedding) ReadF32(name string, dst []float32) error {
	if err := r.TensorSource.ReadF32(name, dst); err != nil || name != "model.embed_tokens.weight" {
		return err
	}
	for i := range dst {
		dst[i] = roundBF16(dst[i])
	}
	return nil
}

// A model with bf16-only weights (Options.WeightsBF16) holds exactly the
// bf16 rounding of every weight matrix, the embedding included, and the
// f32 values of the rest (Params widens the bf16 ones), and its logits are
// bit for bit those of an f32 inference model with EnableBF16 (the same
// bf16 operands and products) whose embedding was rounded to bf16 (the
// bf16 lookup widens exactly those rows), untied and tied, at a shape
// smaller than the model's. With an odd hidden size the table stays f32
// (and the logits equal EnableBF16's on the plain source).
func TestInferWeightsBF16MatchesEnableBF16(t *testing.T) {
	for _, c := range []struct {
		name   string
		fam    model.Family
		hidden int
		tied   bool
		reason string
	}{
		{"llama", model.Llama, 32, false, "untied: lm_head and the embedding in the bf16 store"},
		{"nemotron-tied", model.Nemotron, 32, true, "tied: one bf16 table for the lookup and the head"},
		{"llama-hidden-34-tied", model.Llama, 34, true, "hidden 34 (pruned width, head_dim 8 kept): odd H/2 words per row are fine"},
		{"nemotron-hidden-33-tied", model.Nemotron, 33, true, "odd hidden 33: an f32 table for the lookup, its bf16 copy for the tied head"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := model.SyntheticConfig(c.fam, 2, 32, 4, 2, 64, 97)
			must(t, err)
			// a width-pruned hidden size: 4 heads of 8 stay, H changes
			cfg.HiddenSize = c.hidden
			must(t, cfg.Validate())
			cfg.TieWordEmbeddings = c.tied
			src := model.NewRandomSource(cfg, model.F32, 11)
			src.Std = 0.1
			bfEmb := c.hidden%2 == 0
			var ref model.TensorSource = src
			if bfEmb {
				ref = roundedEmbedding{src}
			}
			const Batch, Seq = 2, 8
			wb, err := gpu.NewModelOpts(dev, cfg, src, gpu.Options{Batch: Batch, Seq: Seq, WeightsBF16: true})
			must(t, err)
			defer wb.Free()
			shadow, err := gpu.NewModel(dev, cfg, ref, Batch, Seq, false)
			must(t, err)
			defer shadow.Free()
			must(t, shadow.EnableBF16())
			if !wb.WeightsBF16() || shadow.WeightsBF16() {
				t.Fatalf("WeightsBF16(): bf16 store %v, shadow model %v", wb.WeightsBF16(), shadow.WeightsBF16())
			}
			if wb.NumParams() != shadow.NumParams() {
				t.Errorf("NumParams: bf16 store %d, f32 %d", wb.NumParams(), shadow.NumParams())
			}
			// f32 + bf16 shadow is 6 bytes a weight; the store 2 for the
			// matrices, 4 for the rest (6 for a tied f32 embedding)
			if wb.WeightBytes() >= shadow.WeightBytes()/2 {
				t.Errorf("WeightBytes: bf16 store %d, f32 with shadow %d: want under half", wb.WeightBytes(), shadow.WeightBytes())
			}
			params, err := wb.Params()
			must(t, err)
			for _, ti := range model.ExpectedTensors(cfg) {
				want := make([]float32, ti.NumElements())
				must(t, src.ReadF32(ti.Name, want))
				linear := len(ti.Shape) == 2 && (bfEmb || !strings.Contains(ti.Name, "embed_tokens"))
				if linear {
					for i := range want {
						want[i] = roundBF16(want[i])
					}
				}
				if !slices.Equal(params[ti.Name], want) {
					t.Errorf("%s (linear %v): device weights differ from the source's (bf16-rounded when linear)", ti.Name, linear)
				}
				one := make([]float32, len(want))
				must(t, wb.ReadParam(ti.Name, one))
				if !slices.Equal(one, want) {
					t.Errorf("ReadParam(%s) differs from Params", ti.Name)
				}
			}
			ids, targets := randRows(2, 6, cfg.VocabSize, 5)
			V := cfg.VocabSize
			logits := func(gm *gpu.Model) []float32 {
				must(t, gm.SetInputs(ids, targets))
				must(t, gm.Infer(nil))
				out := make([]float32, 2*6*V)
				must(t, dev.Download(out, gm.Logits()))
				return out
			}
			got, want := logits(wb), logits(shadow)
			if d, _ := maxDiff(got, want); d != 0 {
				t.Errorf("logits: bf16 store and EnableBF16 shadow differ by %g, want bit-identical", d)
			}
		})
	}
}

// A training model with WeightsBF16 has no f32 masters but a shard's
// (Engine.Shard): an update without one is refused; RefreshBF16 has no
// f32 masters to round from.
func TestInferWeightsBF16Errors(t *testing.T) {
	cfg, err := model.SyntheticConfig(model.Llama, 2, 32, 4, 2, 64, 97)
	must(t, err)
	src := model.NewRandomSource(cfg, model.F32, 1)
	tm, err := gpu.NewModelOpts(dev, cfg, src, gpu.Options{Batch: 1, Seq: 4, Train: true, WeightsBF16: true})
	must(t, err)
	defer tm.Free()
	arch, err := model.NewArch(cfg, src)
	must(t, err)
	eng, err := gpu.NewEngineFor(tm, nil, distill.EngineConfig{Arch: arch, Weights: src, Batch: 1, Seq: 4, Losses: distill.Losses{CE: 1}, Optim: distill.DefaultOptim()})
	must(t, err)
	defer eng.Free()
	_, err = eng.Micro(batch(1, 4, cfg.VocabSize, 1), 0, 1)
	must(t, err)
	if err := eng.Update(1e-3, 1, 1); err == nil || !strings.Contains(err.Error(), "Shard") {
		t.Errorf("update of bf16-only training weights without a shard: error %v, want one naming Shard", err)
	}
	gm, err := gpu.NewModelOpts(dev, cfg, src, gpu.Options{Batch: 1, Seq: 4, WeightsBF16: true})
	must(t, err)
	defer gm.Free()
	if err := gm.RefreshBF16(); err == nil || !strings.Contains(err.Error(), "bf16-only") {
		t.Errorf("RefreshBF16 on a bf16 store: error %v", err)
	}
	must(t, gm.EnableBF16()) // already bf16: a no-op
	if err := gm.ReadParam("model.layers.0.mlp.up_proj.weight", make([]float32, 3)); err == nil || !strings.Contains(err.Error(), "host buffer 3") {
		t.Errorf("ReadParam with a short buffer: error %v", err)
	}
}

// poolPeak builds an inference model of cfg from src in a fresh pool
// state (the device's cached blocks trimmed), runs one pass over ids, and
// returns the pool's peak bytes (in use + cached) over construction and
// the pass, the model's WeightBytes and number of parameters, and the
// pass's logits.
func poolPeak(t *testing.T, cfg *model.Config, src model.TensorSource, batch, seq int, wbf16 bool, ids [][]int32) (peak, weights, params int64, logits []float32) {
	t.Helper()
	must(t, dev.Trim())
	p := dev.Pool()
	base := p.InUse
	p.Peak = p.InUse + p.Cached
	gm, err := gpu.NewModelOpts(dev, cfg, src, gpu.Options{Batch: batch, Seq: seq, WeightsBF16: wbf16})
	must(t, err)
	defer gm.Free()
	must(t, gm.SetInputs(ids, nil))
	must(t, gm.Infer(nil))
	_, _, err = gm.TokenLogProbs()
	must(t, err)
	logits = make([]float32, len(ids)*len(ids[0])*cfg.VocabSize)
	must(t, dev.Download(logits, gm.Logits()))
	return p.Peak - base, gm.WeightBytes(), int64(gm.NumParams()), logits
}

// The device memory of an inference model of the issue's ~100M goal shape
// (nemotron L8 H768, 12 heads / 4 KV, F3072, V32000) at batch 1 × seq 1024
// with f32 and with bf16-only weight matrices: the pool's peak over
// construction and a pass (the emulator's pool accounts bytes as on a
// GPU). The bf16 store must save at least 1.5 bytes per matrix weight
// (2 minus the pool's rounding slack); both passes' logits match the CPU
// forward's (TF32 off) to the tolerances of TestInferMatchesCPU.
func TestInferWeightsBF16MemoryGoalShape(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads the ~100M goal-shape model twice")
	}
	cfg, err := gpu.NemotronBench100M()
	must(t, err)
	var linear int64 // every matrix, the embedding included, is stored bf16
	for _, ti := range model.ExpectedTensors(cfg) {
		if len(ti.Shape) == 2 {
			linear += int64(ti.NumElements())
		}
	}
	must(t, dev.SetTF32(false))
	defer dev.SetTF32(true)
	src := model.NewRandomSource(cfg, model.F32, 3)
	ids, _ := randRows(1, 6, cfg.VocabSize, 1) // a few tokens: the emulator's GEMM is slow
	f32Peak, f32W, total, f32Logits := poolPeak(t, cfg, src, 1, 1024, false, ids)
	bfPeak, bfW, _, bfLogits := poolPeak(t, cfg, src, 1, 1024, true, ids)
	cpu, err := model.New(cfg, src, model.Options{})
	must(t, err)
	want, err := cpu.Forward(toInts(ids), nil)
	must(t, err)
	cpu.Close()
	for _, c := range []struct {
		what string
		got  []float32
		tol  float64
	}{{"f32 weights", f32Logits, 1e-4}, {"bf16 weights", bfLogits, 3e-2}} {
		d, scale := maxDiff(c.got, want)
		t.Logf("%s: logits max |diff| vs CPU %.3g (max |logit| %.3g)", c.what, d, scale)
		if lim := c.tol * (1 + scale); !(d <= lim) {
			t.Errorf("%s: logits differ from the CPU forward by %.3g, allowed %.3g", c.what, d, lim)
		}
	}
	const mib = 1 << 20
	t.Logf("%s L%d H%d F%d V%d, batch 1 × seq 1024 on %s: pool peak f32 weights %.1f MiB (weights %.1f MiB), bf16 weights %.1f MiB (weights %.1f MiB): %.2f×; %d matrix weights of %d",
		cfg.Family, cfg.NumLayers, cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize, dev.Name,
		float64(f32Peak)/mib, float64(f32W)/mib, float64(bfPeak)/mib, float64(bfW)/mib, float64(bfPeak)/float64(f32Peak), linear, total)
	if saved := f32Peak - bfPeak; saved < 3*linear/2 {
		t.Errorf("bf16 weights save %d bytes of pool peak, want ≥ 1.5 bytes × %d matrix weights", saved, linear)
	}
	// each bf16 tensor starts 256-byte aligned
	if want := 4*(total-linear) + 2*linear; bfW < want || bfW > want+int64(len(model.ExpectedTensors(cfg)))*256 {
		t.Errorf("bf16 store: WeightBytes %d, want %d + alignment", bfW, want)
	}
	if want := 4 * total; f32W != want {
		t.Errorf("f32 weights: WeightBytes %d, want %d", f32W, want)
	}
}
