package distill

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// corpus is a small token stream with structure a tiny model can learn
// (repeating patterns with noise).
func corpus(seed int64, docs, length, vocab int) data.MemorySource {
	rng := rand.New(rand.NewSource(seed))
	out := make(data.MemorySource, docs)
	for d := range out {
		doc := make([]int32, length)
		a, b := rng.Intn(vocab), 1+rng.Intn(5)
		for i := range doc {
			if rng.Intn(10) == 0 {
				doc[i] = int32(rng.Intn(vocab))
			} else {
				doc[i] = int32((a + b*i) % vocab)
			}
		}
		out[d] = doc
	}
	return out
}

func sampler(t testing.TB, src data.TokenSource, seq int, seed uint64) data.Sampler {
	t.Helper()
	s, err := data.NewGPTSampler(src, data.SamplerOptions{SeqLen: seq, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestResumeEqualsUninterrupted(t *testing.T) {
	cfg := tinyConfig(t, "llama", 2, 32, 4, 2, 48, 64)
	src := corpus(1, 20, 200, 64)
	base := func(out string) Config {
		return Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, src, 16, 3),
			SeqLen: 16, MicroBatch: 2, GlobalBatch: 4, Steps: 8, LR: 3e-3, MinLR: 1e-4, Warmup: 2,
			WeightDecay: 0.01, Seed: 9, Out: out, SaveEvery: 3, KeepLast: 2}
	}
	dir := t.TempDir()
	var want []float64
	c := base(filepath.Join(dir, "a"))
	c.OnStep = func(m StepMetrics) { want = append(want, m.Loss) }
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}

	if !(want[len(want)-1] < want[0]-0.1) {
		t.Fatalf("training loss did not fall: %v", want)
	}

	// Interrupted after step 5, then resumed.
	var got []float64
	ctx, cancel := context.WithCancel(context.Background())
	c = base(filepath.Join(dir, "b"))
	c.OnStep = func(m StepMetrics) {
		got = append(got, m.Loss)
		if m.Step == 5 {
			cancel()
		}
	}
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Steps != 5 || !strings.HasSuffix(res.Checkpoint, "step-0000005") {
		t.Fatalf("interrupted run: %+v", res)
	}
	c = base(filepath.Join(dir, "b"))
	c.Resume = true
	c.OnStep = func(m StepMetrics) { got = append(got, m.Loss) }
	if res, err = Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if res.Steps != 8 {
		t.Fatalf("resumed run ended at step %d", res.Steps)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d losses, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: resumed loss %v, uninterrupted %v", i+1, got[i], want[i])
		}
	}
	// KeepLast 2: only the two newest checkpoints remain.
	ents, _ := os.ReadDir(filepath.Join(dir, "b", "checkpoints"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "latest,step-0000006,step-0000008" {
		t.Errorf("checkpoints kept: %v", names)
	}
	// The final checkpoint is a loadable HF checkpoint.
	if _, err := model.Load(filepath.Join(dir, "b", "checkpoints", "step-0000008"), model.Options{}); err != nil {
		t.Fatal(err)
	}

	// A crash after step 5 whose last checkpoint is step 3: the resumed run
	// repeats steps 4 and 5, and metrics.jsonl must hold each step once.
	c = base(filepath.Join(dir, "c"))
	ctx, cancel = context.WithCancel(context.Background())
	c.OnStep = func(m StepMetrics) {
		if m.Step == 5 {
			cancel()
		}
	}
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(dir, "c", "checkpoints")
	if err := os.RemoveAll(filepath.Join(ck, "step-0000005")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ck, "latest"), []byte("step-0000003\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = base(filepath.Join(dir, "c"))
	c.Resume = true
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	b, err := os.ReadFile(filepath.Join(dir, "c", "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			Step        int      `json:"step"`
			Loss        *float64 `json:"loss"`
			Interrupted bool     `json:"interrupted"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.Loss != nil && !m.Interrupted {
			seen[m.Step]++
		}
	}
	for s := 1; s <= 8; s++ {
		if seen[s] != 1 {
			t.Errorf("metrics.jsonl has %d training lines for step %d, want 1", seen[s], s)
		}
	}
}

// sliceFFN prunes a checkpoint's MLP to its first f neurons (a stand-in
// for importance-based pruning: the student starts from the teacher).
func sliceFFN(t testing.TB, cfg *model.Config, src model.TensorSource, f int) (*model.Config, model.TensorSource) {
	t.Helper()
	sc := *cfg
	sc.IntermediateSize = f
	out := model.NewMemSource()
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		buf := make([]float32, info.NumElements())
		if err := src.ReadF32(name, buf); err != nil {
			t.Fatal(err)
		}
		shape := info.Shape
		switch {
		case strings.HasSuffix(name, "up_proj.weight"), strings.HasSuffix(name, "gate_proj.weight"):
			buf, shape = buf[:f*shape[1]], []int{f, shape[1]}
		case strings.HasSuffix(name, "down_proj.weight"):
			h, F := shape[0], shape[1]
			nb := make([]float32, h*f)
			for r := 0; r < h; r++ {
				copy(nb[r*f:(r+1)*f], buf[r*F:r*F+f])
			}
			buf, shape = nb, []int{h, f}
		}
		if err := out.SetF32(name, shape, buf); err != nil {
			t.Fatal(err)
		}
	}
	return &sc, out
}

// prunedPair is a tiny nemotron teacher (weights σ 0.15, so its
// distribution is far from uniform) and its student with the FFN sliced to
// 16.
func prunedPair(t *testing.T) (*model.Model, *model.Config, model.TensorSource) {
	t.Helper()
	cfg := tinyConfig(t, "nemotron", 2, 32, 4, 2, 64, 64)
	tsrc := model.NewRandomSource(cfg, model.F32, 5)
	tsrc.Std = 0.15
	teacher, err := model.New(cfg, tsrc, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scfg, ssrc := sliceFFN(t, cfg, tsrc, 16)
	return teacher, scfg, ssrc
}

func TestDistillPrunedStudentLossAndKLFall(t *testing.T) {
	teacher, scfg, ssrc := prunedPair(t)
	src := corpus(2, 30, 300, 64)
	var kls []float64
	res, err := Run(context.Background(), Config{StudentConfig: scfg, StudentWeights: ssrc, Teacher: teacher,
		Train: sampler(t, src, 16, 1), ValSampler: sampler(t, src, 16, 99), ValBatches: 2, ValEvery: 10,
		SeqLen: 16, MicroBatch: 4, Steps: 40, LR: 3e-3, MinLR: 3e-4, Warmup: 4,
		Losses: Losses{KL: 1}, Seed: 1, Out: t.TempDir(),
		OnStep: func(m StepMetrics) { kls = append(kls, m.KL) }})
	if err != nil {
		t.Fatal(err)
	}
	first, last := mean(kls[:5]), mean(kls[len(kls)-5:])
	t.Logf("KL first 5 steps %.4f, last 5 %.4f, final val KL %.4f", first, last, res.ValKL)
	if !(last < 0.7*first) {
		t.Fatalf("KL to the teacher did not fall: first %.4f, last %.4f", first, last)
	}
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func TestIntermediateLossFalls(t *testing.T) {
	teacher, scfg, ssrc := prunedPair(t)
	scfg.NumLayers = 1 // depth-pruned too: student layer 1 (final norm) ↔ teacher layer 2
	src := corpus(2, 30, 300, 64)
	var ms []StepMetrics
	out := t.TempDir()
	c := Config{StudentConfig: scfg, StudentWeights: ssrc, Teacher: teacher,
		Train: sampler(t, src, 16, 1), SeqLen: 16, MicroBatch: 4, Steps: 30, LR: 3e-3, MinLR: 3e-4, Warmup: 3,
		Losses: Losses{KL: 1, Intermediate: []LayerPair{{0, 0}, {1, 2}}}, Seed: 1, Out: out,
		OnStep: func(m StepMetrics) { ms = append(ms, m) }}
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	first, last := ms[0], ms[len(ms)-1]
	if !(last.IS < first.IS) || !(last.KL < first.KL) {
		t.Fatalf("intermediate loss %.4f→%.4f, KL %.4f→%.4f: both should fall", first.IS, last.IS, first.KL, last.KL)
	}
	if math.Abs(first.Loss-2*first.KL) > 1e-4*first.Loss {
		t.Errorf("dynamic weighting: total %.5f should be 2·KL = %.5f", first.Loss, 2*first.KL)
	}
	for _, tc := range []struct {
		pairs  []LayerPair
		reason string
	}{
		{[]LayerPair{{2, 0}}, "student layer beyond the final norm"},
		{[]LayerPair{{0, 3}}, "teacher layer beyond the final norm"},
		{[]LayerPair{{0, 1}, {1, 1}}, "teacher layer used twice"},
	} {
		c.Losses.Intermediate = tc.pairs
		c.Out = t.TempDir()
		c.Train = sampler(t, src, 16, 1)
		if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "layer") {
			t.Errorf("%s: error %v", tc.reason, err)
		}
	}
}

func TestCheckpointFailureKeepsPreviousLatest(t *testing.T) {
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	src := corpus(1, 10, 100, 32)
	out := t.TempDir()
	failCheckpointHook = func(step int) error {
		if step == 4 {
			return syscall.ENOSPC
		}
		return nil
	}
	defer func() { failCheckpointHook = nil }()
	_, err := Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, src, 8, 1),
		SeqLen: 8, MicroBatch: 2, Steps: 6, SaveEvery: 2, Out: out})
	if err == nil || !strings.Contains(err.Error(), "step 4") || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %v, want one naming step 4 and ENOSPC", err)
	}
	b, _ := os.ReadFile(filepath.Join(out, "checkpoints", "latest"))
	if strings.TrimSpace(string(b)) != "step-0000002" {
		t.Fatalf("latest = %q, want the previous complete checkpoint", b)
	}
	ents, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
	for _, e := range ents {
		if strings.Contains(e.Name(), "partial") || e.Name() == "step-0000004" {
			t.Errorf("partial checkpoint left behind: %s", e.Name())
		}
	}
	// And the run resumes from it once the disk has room again.
	failCheckpointHook = nil
	res, err := Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, src, 8, 1),
		SeqLen: 8, MicroBatch: 2, Steps: 6, SaveEvery: 2, Out: out, Resume: true})
	if err != nil || res.Steps != 6 {
		t.Fatalf("resume after failed checkpoint: %+v %v", res, err)
	}
}

func TestNonFiniteLoss(t *testing.T) { testNonFiniteLoss(t, "cpu") }

// testNonFiniteLoss: a NaN weight stops the run at step 1 naming it, or
// with SkipNonFin every step is skipped without an update.
func testNonFiniteLoss(t *testing.T, dev device.Kind) {
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	src := corpus(1, 10, 100, 32)
	ms, err := model.LoadMem(model.NewRandomSource(cfg, model.F32, 1))
	if err != nil {
		t.Fatal(err)
	}
	w, info, _ := ms.Get("lm_head.weight")
	w[3] = float32(math.NaN())
	ms.SetF32("lm_head.weight", info.Shape, w)
	c := Config{StudentConfig: cfg, StudentWeights: ms, Train: sampler(t, src, 8, 1),
		SeqLen: 8, MicroBatch: 2, Steps: 3, Out: t.TempDir(), Device: dev}
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "step 1: loss is NaN") {
		t.Fatalf("error %v, want one naming step 1", err)
	}
	c.SkipNonFin, c.Out, c.Train = true, t.TempDir(), sampler(t, src, 8, 1)
	var skipped int
	c.OnStep = func(m StepMetrics) {
		if m.Skipped {
			skipped++
		}
	}
	if res, err := Run(context.Background(), c); err != nil || res.Steps != 3 || skipped != 3 {
		t.Fatalf("--skip-nonfinite: %+v %v, %d skipped", res, err, skipped)
	}
}

// Accumulating 2 micro-batches of 2 is the same optimisation as one
// micro-batch of 4 over the same samples.
func TestGradientAccumulationMatchesLargeBatch(t *testing.T) {
	cfg := tinyConfig(t, "nemotron", 2, 16, 4, 2, 24, 32)
	src := corpus(3, 10, 100, 32)
	run := func(micro int) []float64 {
		var losses []float64
		_, err := Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, src, 8, 1),
			SeqLen: 8, MicroBatch: micro, GlobalBatch: 4, Steps: 4, LR: 1e-2, Seed: 2,
			OnStep: func(m StepMetrics) { losses = append(losses, m.Loss) }})
		if err != nil {
			t.Fatal(err)
		}
		return losses
	}
	a, b := run(4), run(2)
	for i := range a {
		if math.Abs(a[i]-b[i]) > 2e-5*math.Abs(a[i]) {
			t.Errorf("step %d: loss %.7f with one micro-batch of 4, %.7f with 2×2", i+1, a[i], b[i])
		}
	}
}

// The teacher's top-k logits are computed once: a second run over the same
// data reads them from the cache and gets the same losses.
func TestTopKCache(t *testing.T) {
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	tsrc := model.NewRandomSource(cfg, model.F32, 5)
	tsrc.Std = 0.3
	teacher, err := model.New(cfg, tsrc, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := corpus(4, 10, 100, 32)
	cache := filepath.Join(t.TempDir(), "topk")
	run := func(k int) ([]float64, error) {
		var kl []float64
		_, err := Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Teacher: teacher,
			Train: sampler(t, src, 8, 1), SeqLen: 8, MicroBatch: 2, Steps: 4, Seed: 3, TopKCache: cache,
			Losses: Losses{KL: 1, TopK: k}, OnStep: func(m StepMetrics) { kl = append(kl, m.KL) }})
		return kl, err
	}
	a, err := run(5)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(cache)
	if len(ents) != 5 { // meta.json + one file per micro-batch
		t.Fatalf("cache holds %d files, want 5", len(ents))
	}
	// A teacher with other weights (same architecture): the second run
	// gets the first teacher's targets, so they came from the cache.
	other := model.NewRandomSource(cfg, model.F32, 6)
	other.Std = 0.3
	if teacher, err = model.New(cfg, other, model.Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := run(5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("step %d: KL %v from the teacher, %v from the cache", i+1, a[i], b[i])
		}
	}
	if _, err := run(7); err == nil || !strings.Contains(err.Error(), "another teacher, k") {
		t.Errorf("a cache made for k=5 must be refused for k=7, got %v", err)
	}
}

// The intermediate loss's projection is trained state outside the HF
// checkpoint; resume must restore it too.
func TestResumeWithIntermediateProjection(t *testing.T) {
	cfg := tinyConfig(t, "llama", 2, 16, 2, 1, 24, 32)
	tcfg := tinyConfig(t, "llama", 2, 24, 2, 1, 24, 32)
	tsrc := model.NewRandomSource(tcfg, model.F32, 5)
	tsrc.Std = 0.3
	teacher, err := model.New(tcfg, tsrc, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := corpus(6, 10, 100, 32)
	out := t.TempDir()
	base := func() Config {
		return Config{StudentConfig: cfg, RandomInit: true, Teacher: teacher, Train: sampler(t, src, 8, 1),
			SeqLen: 8, MicroBatch: 2, Steps: 6, LR: 1e-2, Seed: 4, Out: out,
			Losses: Losses{KL: 1, Intermediate: []LayerPair{{1, 1}, {2, 2}}}}
	}
	var want, got []float64
	c := base()
	c.Out = t.TempDir()
	c.OnStep = func(m StepMetrics) { want = append(want, m.Loss) }
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c = base()
	c.OnStep = func(m StepMetrics) {
		got = append(got, m.Loss)
		if m.Step == 3 {
			cancel()
		}
	}
	if _, err := Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	c = base()
	c.Resume = true
	c.OnStep = func(m StepMetrics) { got = append(got, m.Loss) }
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("losses with resume %v, uninterrupted %v", got, want)
		}
	}
}
