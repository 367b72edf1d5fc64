package distill

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

func planModel(t *testing.T, spec string) *model.Config {
	t.Helper()
	c, err := PlanModelConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The case: Minitron-8B distilled from Nemotron-4 15B on 8 GPUs in
// bf16 with --zero 2 and recomputation, sequence 4096, micro-batch 1,
// logits in chunks of 512 tokens: under 80 GB per GPU (73.4 GB), every
// part present, and the weights, gradients and optimizer shards alone
// about 62 GB (31.27 GB bf16 teacher + 16.58 GB bf16 student + 12.48 GB
// f32 master and moment shards + 2.07 GB bf16 gradient shard: one
// micro-batch per rank, so the shard's sum is a copy of the bf16
// reduction) plus 2.56 GB of bf16 gradient buckets the backward pass
// reduces from (the [V, H] one for the head and then the embedding, 2.10
// GB; one layer's matrices, 0.39 GB; the rest and the pool's size classes):
// 64.96 GB, gradients 4.63 GB (9.19 GB with f32 gradients).
func TestPlanMinitron8BFits(t *testing.T) {
	p, err := NewPlan(PlanConfig{Teacher: planModel(t, "nemotron:nemotron-4-15b"), Student: planModel(t, "nemotron:minitron-8b"),
		Seq: 4096, Batch: 1, Precision: "bf16", World: 8, Zero: 2, Recompute: true, LogitChunk: 512, Losses: Losses{KL: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", p)
	if p.PerGPUBytes >= 80e9 {
		t.Errorf("per GPU %d bytes, want under 80 GB", p.PerGPUBytes)
	}
	for _, x := range p.Parts {
		if x.Bytes <= 0 {
			t.Errorf("part %s is %d bytes", x.Name, x.Bytes)
		}
	}
	state := p.Part(PartTeacherWeights) + p.Part(PartStudentWeights) + p.Part(PartGradients) + p.Part(PartOptimizer)
	if state < 64.5e9 || state > 65.5e9 {
		t.Errorf("weights, gradients and optimizer shards %d bytes, want about 62 GB and the 2.6 GB of bf16 gradient buckets (65.0 GB)", state)
	}
	if g := p.Part(PartGradients); g < 4.55e9 || g > 4.7e9 {
		t.Errorf("gradients %d bytes, want 4.63 GB (2.07 GB bf16 shard + 2.56 GB bf16 buckets)", g)
	}
	if p.StudentParams != 8_271_699_968 || p.TeacherParams != 15_628_775_424 {
		t.Errorf("parameters %d / %d, want Minitron-8B's 8.27B and Nemotron-4 15B's 15.63B", p.StudentParams, p.TeacherParams)
	}
}

// The formula's parts one setting at a time, on a model big enough that
// the pool's rounding is exact per 64 MiB (checked with cuda.SizeClass).
func TestPlanParts(t *testing.T) {
	st := planModel(t, "llama:llama-3.1-minitron-4b")
	te := planModel(t, "llama:llama-3.1-8b")
	P := st.ParamCounts().Total
	base := PlanConfig{Student: st, Seq: 2048, Batch: 1, Losses: Losses{CE: 1}}
	plan := func(mod func(*PlanConfig)) Plan {
		c := base
		mod(&c)
		p, err := NewPlan(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	f32 := plan(func(*PlanConfig) {})
	cls := func(n int64) int64 { return cuda.SizeClass(n) }
	big, layer, _, rest := planBuckets(st, false)
	_, layerF, layerB, _ := planBuckets(st, true)
	cls2 := func(n int64) int64 { return cuda.SizeClass(4 * ((n + 1) / 2)) } // n bf16 values
	if layerF+layerB < layer || layerF > 2*int64(st.HiddenSize) {
		t.Errorf("bf16 layer bucket: %d f32 (want the two norms' %d) and %d bf16 of %d", layerF, 2*st.HiddenSize, layerB, layer)
	}
	bgF, bgB := planGradSplit(st)
	if E := int64(st.VocabSize) * int64(st.HiddenSize); bgF < E || bgF+bgB < P || bgB > P-E+int64(st.NumLayers)*7*planBF16Align {
		t.Errorf("bf16 gradient split %d f32 + %d bf16 of %d parameters (embedding %d)", bgF, bgB, P, E)
	}
	if V, H := int64(st.VocabSize), int64(st.HiddenSize); big != V*H || rest != H {
		t.Errorf("buckets: big %d (want V·H %d), rest %d (want the final norm's %d)", big, V*H, rest, H)
	}
	// bf16 without recomputation: one f32 working set instead of L, and
	// per layer bf16 stores of what the backward pass reads
	b16a := plan(func(c *PlanConfig) { c.Precision = "bf16" })
	rows, H, F, L := int64(2048), int64(st.HiddenSize), int64(st.IntermediateSize), int64(st.NumLayers)
	QD, W, probs := int64(st.QDim()), int64(st.QDim()+2*st.KVDim()), int64(st.NumHeads)*2048*2048
	set32 := 3*cls(4*rows*H) + cls(4*rows*W) + cls(4*rows*QD) + cls(8*rows*F) + cls(4*rows*F) + cls(4*probs)
	inputs := 2*cls(2*rows*H) + cls(2*rows*QD) + cls(2*rows*F) // the products' bf16 inputs
	stores := cls(2*rows*H) + cls(2*rows*W) + cls(4*rows*F) + cls(2*probs)
	scratch := cls(2*rows*H) + cls(4*rows*F) + cls(2*rows*W) // the backward's bf16 gradient copies
	for _, c := range []struct {
		name   string
		got    int64
		want   int64
		reason string
	}{
		{"bf16 activations", b16a.Part(PartActivations) - f32.Part(PartActivations), -(L-1)*set32 + L*(inputs+stores) + cls(2*rows*H) + scratch,
			"bf16: one shared f32 set instead of L, per layer bf16 product inputs and stores of q|k|v, gate|up, the stream after attention and the probabilities, the final norm's bf16 copy, the backward's bf16 copies"},
		{"bf16 recompute activations", plan(func(c *PlanConfig) { c.Precision, c.Recompute = "bf16", true }).Part(PartActivations) - plan(func(c *PlanConfig) { c.Recompute = true }).Part(PartActivations),
			inputs + cls(2*rows*H) + scratch, "with --recompute bf16 adds only the one layer's product inputs and the bf16 copies"},
		{"f32 weights", f32.Part(PartStudentWeights), cls(4 * P), "4 B per parameter, the master copy itself"},
		{"f32 gradients", f32.Part(PartGradients), cls(4 * P), "4 B per parameter"},
		{"f32 moments", f32.Part(PartOptimizer), 2 * cls(4*P), "two f32 moments"},
		{"no teacher", f32.Part(PartTeacherWeights), 0, "CE alone needs no teacher"},
		{"bf16 weights", plan(func(c *PlanConfig) { c.Precision = "bf16" }).Part(PartStudentWeights), cls(2 * P), "the bf16 copy"},
		{"bf16 master+moments", plan(func(c *PlanConfig) { c.Precision = "bf16" }).Part(PartOptimizer), 3 * cls(4*P), "f32 master and two moments"},
		{"zero 1 moments", plan(func(c *PlanConfig) { c.World, c.Zero = 8, 1 }).Part(PartOptimizer), 2 * cls(4*((P+7)/8)), "moments sharded over 8"},
		{"zero 1 gradients", plan(func(c *PlanConfig) { c.World, c.Zero = 8, 1 }).Part(PartGradients), cls(4 * P), "gradients whole under --zero 1"},
		{"zero 2 gradients", plan(func(c *PlanConfig) { c.World, c.Zero = 8, 2 }).Part(PartGradients), cls(4*((P+7)/8)) + cls(4*big) + cls(4*layer) + cls(4*rest),
			"under --zero 2 the shard's gradient sum and the buckets: [V, H] for the head and embedding, one layer's, the final norm's"},
		{"zero 2 accumulation", plan(func(c *PlanConfig) { c.World, c.Zero, c.Accum = 8, 2, 4 }).Part(PartGradients), cls(4*((P+7)/8)) + cls(4*big) + cls(4*layer) + cls(4*rest),
			"the micro-batches accumulate into the shard's sum"},
		{"accumulation", plan(func(c *PlanConfig) { c.Accum = 4 }).Part(PartGradients), 2 * cls(4*P), "the step's gradient sum beside the backward pass's"},
		{"bf16 gradients", plan(func(c *PlanConfig) { c.Precision = "bf16" }).Part(PartGradients), cls(4*bgF) + cls(2*bgB), "matrices' gradients bf16 (2 B), the norms' and the embedding's f32"},
		{"bf16 accumulation", plan(func(c *PlanConfig) { c.Precision, c.Accum = "bf16", 4 }).Part(PartGradients), 2 * (cls(4*bgF) + cls(2*bgB)), "the sum likewise"},
		{"offload moments", plan(func(c *PlanConfig) { c.Precision, c.Offload = "bf16", true }).Part(PartOptimizer), 0, "optimizer offload: masters and moments on the host"},
		{"offload host", plan(func(c *PlanConfig) { c.Precision, c.Offload = "bf16", true }).HostBytes, 12*P + 8*min(P, planOffloadHost), "12 B per parameter and a transfer chunk's scratch on the host"},
		{"offload gradients", plan(func(c *PlanConfig) { c.Precision, c.Offload = "bf16", true }).Part(PartGradients), cls(4*bgF) + cls(2*bgB), "the bf16 gradients of --zero 0"},
		{"bf16 zero 1 accumulation", plan(func(c *PlanConfig) { c.Precision, c.World, c.Zero, c.Accum = "bf16", 8, 1, 4 }).Part(PartGradients), cls(4*bgF) + cls(2*bgB) + cls(4*((P+7)/8)),
			"the bf16 arena once (each micro-batch's is reduced into the shard), the shard's sum in f32"},
		{"bf16 zero 2 accumulation", plan(func(c *PlanConfig) { c.Precision, c.World, c.Zero, c.Accum = "bf16", 8, 2, 4 }).Part(PartGradients),
			cls(4*((P+7)/8)) + cls2(big) + 2*cls(4*2048) + cls(4*layerF) + cls2(layerB) + cls(4*rest),
			"the shard's f32 sum, the bf16 [V, H] bucket with the embedding's two id maps, the layer bucket's bf16 matrices and f32 norms, the final norm's"},
		{"world without zero", plan(func(c *PlanConfig) { c.World = 8 }).PerGPUBytes, f32.PerGPUBytes, "plain data parallelism holds everything on every rank"},
		{"teacher f32", plan(func(c *PlanConfig) { c.Teacher, c.Losses = te, Losses{KL: 1} }).Part(PartTeacherWeights), cls(4 * te.ParamCounts().Total), "an f32 teacher"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, c.got, c.want, c.reason)
		}
	}
	// one micro-batch per rank: the shard's sum is a copy of the bf16
	// reduction, 2 B per matrix element (the f32 parts: norms, and under
	// --zero 1 the embedding, each rank's share)
	for _, z := range []int{1, 2} {
		acc := plan(func(c *PlanConfig) { c.Precision, c.World, c.Zero, c.Accum = "bf16", 8, z, 4 }).Part(PartGradients)
		one := plan(func(c *PlanConfig) { c.Precision, c.World, c.Zero = "bf16", 8, z }).Part(PartGradients)
		sum := one - (acc - cls(4*((P+7)/8)))
		lo, hi := cls2((P+7)/8)-64<<20, cls(4*((P+7)/8))
		if z == 2 {
			hi = cls2((P+7)/8) + cls(4*int64(st.NumLayers)*2*int64(st.HiddenSize)+4*rest)
		}
		if sum < lo || sum > hi {
			t.Errorf("bf16 --zero %d, one micro-batch per rank: shard's sum %d bytes, want in [%d, %d]", z, sum, lo, hi)
		}
	}
	rec := plan(func(c *PlanConfig) { c.Recompute = true })
	if a, b := rec.Part(PartActivations), f32.Part(PartActivations); a*10 > b {
		t.Errorf("recomputation keeps %d activation bytes of %d, want under a tenth at 32 layers", a, b)
	}
	ch := plan(func(c *PlanConfig) { c.LogitChunk = 256 })
	if a, b := ch.Part(PartLogitChunks), f32.Part(PartLogitChunks); a*7 > b {
		t.Errorf("256-token chunks keep %d logit bytes of %d (2048 tokens), want an eighth", a, b)
	}
	b16 := plan(func(c *PlanConfig) { c.Teacher, c.Losses, c.Precision = te, Losses{KL: 1}, "bf16" })
	if a, b := b16.Part(PartTeacherWeights), 2*te.ParamCounts().Total; a < b || a > b+b/100 {
		t.Errorf("bf16 teacher %d bytes, want about 2 B per parameter (%d)", a, b)
	}
	js, err := json.Marshal(f32)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		PerGPU int64            `json:"per_gpu_bytes"`
		Parts  map[string]int64 `json:"parts"`
	}
	if err := json.Unmarshal(js, &back); err != nil || back.PerGPU != f32.PerGPUBytes || len(back.Parts) != 7 {
		t.Errorf("JSON %s: %+v, %v", js, back, err)
	}
}

func TestPlanErrors(t *testing.T) {
	st := planModel(t, "llama:tiny")
	for _, c := range []struct {
		c      PlanConfig
		want   string
		reason string
	}{
		{PlanConfig{Seq: 8, Batch: 1, Losses: Losses{CE: 1}}, "no student", "a student is required"},
		{PlanConfig{Student: st, Batch: 1, Losses: Losses{CE: 1}}, "must be positive", "no sequence length"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, Zero: 2, Losses: Losses{CE: 1}}, "world size above 1", "--zero on one GPU"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, World: 2, Zero: 3, Losses: Losses{CE: 1}}, "want 0, 1 or 2", "no stage 3"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, Precision: "fp8", Losses: Losses{CE: 1}}, "want f32 or bf16", "unknown precision"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, Losses: Losses{KL: 1}}, "need a teacher", "KL without a teacher"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, LogitChunk: -1, Losses: Losses{CE: 1}}, "logit chunk", "negative chunk"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, Offload: true, Losses: Losses{CE: 1}}, "offload needs bf16", "offload of f32 weights"},
		{PlanConfig{Student: st, Seq: 8, Batch: 1, World: 2, Zero: 1, Precision: "bf16", Offload: true, Losses: Losses{CE: 1}}, "offload needs bf16 and --zero 0", "offload with sharding"},
	} {
		if _, err := NewPlan(c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.reason, err, c.want)
		}
	}
	if _, err := PlanModelConfig("nemotron:no-such-size"); err == nil || !strings.Contains(err.Error(), "no-such-size") {
		t.Errorf("unknown size: %v", err)
	}
	if _, err := PlanModelConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("a directory without config.json: %v", err)
	}
}
