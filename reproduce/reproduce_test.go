package reproduce

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// TestReproduceQuick runs the whole --quick pipeline (it is the CI check of
// `minitron reproduce --quick`, so it runs under -short too), then checks
// that a re-run takes every stage from the cache and that a changed
// evaluation setting reruns only the evaluation stages.
func TestReproduceQuick(t *testing.T) {
	out := t.TempDir()
	var log strings.Builder
	cfg := QuickConfig()
	res, err := Run(context.Background(), Options{Out: out, Config: cfg, Log: &log})
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, log.String())
	}
	if res.Skipped() != 0 {
		t.Fatalf("fresh run took %d stages from the cache", res.Skipped())
	}

	// Every kind of model was trained and evaluated, with finite numbers.
	kinds := map[string]int{}
	for _, e := range res.Models {
		kinds[e.Kind]++
		if e.Eval == nil {
			t.Fatalf("%s: not evaluated", e.Name)
		}
		for _, c := range Corpora {
			l := e.Eval.PPL[c.Key].Loss
			if math.IsNaN(l) || l <= 0 || e.Eval.PPL[c.Key].Tokens == 0 {
				t.Fatalf("%s: %s loss %v over %d tokens", e.Name, c.Key, l, e.Eval.PPL[c.Key].Tokens)
			}
			// The tasks are scored on seed 1 (and unseeded models) only.
			if n, want := e.Eval.Tasks[c.Key].N, map[bool]int{true: cfg.MCItems}[e.Seed <= 1]; n != want {
				t.Fatalf("%s (seed %d): %s task has %d items, want %d", e.Name, e.Seed, c.Key, n, want)
			}
		}
	}
	// Every trained arm ran once per seed; the teacher and the pruned
	// checkpoints once.
	for _, tc := range []struct {
		kind string
		n    int
	}{
		{KindTeacher, 1}, {KindPruned, 2}, {KindPrunedDepth, 2}, {KindPrunedEqTotal, 2}, {KindPrunedRandom, 2},
		{KindMinitron, 2 * cfg.Seeds}, {KindCE, 2 * cfg.Seeds}, {KindDepth, 2 * cfg.Seeds}, {KindEqTotal, 2 * cfg.Seeds},
		{KindRandom, 2 * cfg.Seeds}, {KindScratch, 2 * cfg.Seeds},
		{KindScratchLong, cfg.Seeds}, {KindKDCE, cfg.Seeds}, {KindKDIS, cfg.Seeds}, // first size only
	} {
		if kinds[tc.kind] != tc.n {
			t.Errorf("%d %q models in the results, want %d", kinds[tc.kind], tc.kind, tc.n)
		}
	}
	// The teacher learned something: below the loss of a uniform guess.
	if l := res.Models[0].Eval.PPL["go"].Loss; res.Models[0].Kind != KindTeacher || l >= math.Log(float64(cfg.Vocab)) {
		t.Errorf("first model %s (%s) has Go loss %.3f, want a teacher below ln(vocab) = %.3f", res.Models[0].Name, res.Models[0].Kind, l, math.Log(float64(cfg.Vocab)))
	}
	// Students have the sizes asked for.
	teacherNE := res.Models[0].NonEmbParams
	for _, e := range res.Models {
		if e.Kind != KindMinitron {
			continue
		}
		frac := float64(e.NonEmbParams) / float64(teacherNE)
		want := 0.5
		if e.Student == "25%" {
			want = 0.25
		}
		if math.Abs(frac-want) > 0.1 {
			t.Errorf("%s: %.2f of the teacher's non-embedding parameters, want about %.2f", e.Name, frac, want)
		}
		if e.Arch.Layers != cfg.Teacher.Layers || e.Arch.Heads != cfg.Teacher.Heads {
			t.Errorf("%s: width pruning changed layers or heads: %+v", e.Name, e.Arch)
		}
	}
	if len(res.Claims) != 13 {
		t.Errorf("%d claim checks, want 13 (8 for the first student, 5 for the second)", len(res.Claims))
	}
	for _, c := range res.Claims {
		if c.Seeds != cfg.Seeds || c.OursLoss.N != cfg.Seeds || c.Diff.N != cfg.Seeds || math.IsNaN(c.Diff.SE) {
			t.Errorf("claim %q (%s): %d seeds, ours over %d, difference over %d (se %v): want all %d", c.Claim, c.Student, c.Seeds, c.OursLoss.N, c.Diff.N, c.Diff.SE, cfg.Seeds)
		}
		if c.Verdict != Decide(c.Diff) {
			t.Errorf("claim %q: verdict %s, the rule says %s", c.Claim, c.Verdict, Decide(c.Diff))
		}
	}
	// Random pruning drew other channels for each seed; the KD students of
	// one seed saw the same data (same first-step loss is not required:
	// their models differ), and the seeds' data orders differ.
	r1, err1 := os.ReadFile(filepath.Join(out, "prune", "w50-random", "model", "model.safetensors"))
	r2, err2 := os.ReadFile(filepath.Join(out, "prune", "w50-random-s2", "model", "model.safetensors"))
	if err1 != nil || err2 != nil || string(r1) == string(r2) {
		t.Errorf("random pruning of seeds 1 and 2 gave the same weights (or is missing: %v, %v)", err1, err2)
	}

	rep, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Results", "| w50-kd |", "## The papers' claims", "width beats depth pruning at equal total parameters",
		"logits-only KD beats KD + intermediate-state loss", "| w50-kd-is | ", "## Protocol", "Verdict rule", "OpenBLAS core type", "plots/accuracy_vs_params_go.png", "plots/loss_50.png"} {
		if !strings.Contains(string(rep), want) {
			t.Errorf("REPORT.md lacks %q", want)
		}
	}
	for _, png := range []string{"loss_teacher.png", "loss_50.png", "loss_25.png", "accuracy_vs_params_go.png", "accuracy_vs_params_opticks.png"} {
		b, err := os.ReadFile(filepath.Join(out, "plots", png))
		if err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
			t.Errorf("plot %s missing or not a PNG (%d bytes, %v)", png, len(b), err)
		}
	}
	var saved Result
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil || json.Unmarshal(b, &saved) != nil || len(saved.Models) != len(res.Models) {
		t.Fatalf("results.json unreadable or incomplete: %v", err)
	}
	// The students are ordinary HF checkpoints with a tokenizer.
	for _, dir := range []string{"train/w50-kd-s1/model", "train/w25-eqtotal-kd-s3/model", "prune/w25/model"} {
		if _, err := model.OpenCheckpoint(filepath.Join(out, dir)); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		if _, err := os.Stat(filepath.Join(out, dir, "tokenizer.json")); err != nil {
			t.Errorf("%s: no tokenizer: %v", dir, err)
		}
	}

	// Re-run: everything cached, same numbers.
	again, err := Run(context.Background(), Options{Out: out, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if again.Skipped() != len(again.Stages) {
		t.Fatalf("re-run ran %d of %d stages again", len(again.Stages)-again.Skipped(), len(again.Stages))
	}
	if again.Models[1].Eval.PPL["go"] != res.Models[1].Eval.PPL["go"] {
		t.Fatal("cached evaluation differs")
	}

	// A changed evaluation setting reruns the evaluations only.
	cfg.EvalTokens /= 2
	third, err := Run(context.Background(), Options{Out: out, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range third.Stages {
		if strings.HasPrefix(s.Name, "eval/") == s.Skipped {
			t.Errorf("stage %s: skipped=%v after changing only the evaluation tokens", s.Name, s.Skipped)
		}
	}
}

func TestWidthTarget(t *testing.T) {
	teacher, err := FullConfig().teacherConfig()
	if err != nil {
		t.Fatal(err)
	}
	ne := float64(teacher.ParamCounts().NonEmbedding)
	for _, tc := range []struct {
		frac   float64
		reason string
	}{
		{0.5, "the first student: MLP to 2/3, then embedding channels"},
		{0.25, "the second student: a deeper cut of the embedding channels"},
		{0.9, "a mild cut only shrinks the MLP"},
	} {
		tg, err := widthTarget(teacher, tc.frac)
		if err != nil {
			t.Fatalf("%s: %v", tc.reason, err)
		}
		s := tg.Apply(teacher)
		got := float64(s.ParamCounts().NonEmbedding) / ne
		if math.Abs(got-tc.frac) > 0.06 {
			t.Errorf("%s: %.3f of the non-embedding parameters, want %.2f (target %s)", tc.reason, got, tc.frac, tg)
		}
		if s.NumLayers != teacher.NumLayers || s.NumHeads != teacher.NumHeads {
			t.Errorf("%s: layers/heads changed: %s", tc.reason, tg)
		}
		t.Logf("%g: %s", tc.frac, tg)
		if tc.frac == 0.9 && s.HiddenSize != teacher.HiddenSize {
			t.Errorf("%s: hidden cut to %d", tc.reason, s.HiddenSize)
		}
	}
}

func TestClaims(t *testing.T) {
	ev := func(goLoss, opLoss, acc float64) *Eval {
		return &Eval{PPL: map[string]PPL{"go": {Loss: goLoss}, "opticks": {Loss: opLoss}},
			Tasks: map[string]TaskScore{"go": {AccNorm: acc, AccNormStderr: 2.5}}}
	}
	arm := func(name, kind string, tokens int64, goLoss ...float64) []*Entry {
		var es []*Entry
		for i, l := range goLoss {
			es = append(es, &Entry{Name: seedName(name, i+1), Arm: name, Seed: i + 1, Kind: kind, Student: "50%", Tokens: tokens, Eval: ev(l, l+1, 40)})
		}
		return es
	}
	entries := []*Entry{{Name: "teacher", Arm: "teacher", Kind: KindTeacher, Eval: ev(2, 3, 50)}}
	for _, a := range [][]*Entry{
		arm("kd", KindMinitron, 100, 3.00, 3.02, 2.98),
		arm("scratch", KindScratch, 100, 3.50, 3.53, 3.47),     // about +0.5 every seed: held
		arm("long", KindScratchLong, 800, 2.90, 2.93, 2.87),    // −0.1 every seed: not held
		arm("ce", KindCE, 100, 3.01, 3.00, 2.99),               // −0.01, +0.02, −0.01: inconclusive
		arm("depth", KindDepth, 100, 3.10, 3.10),               // two seeds only: inconclusive
		arm("random", KindRandom, 100, 3.02, 3.04, 3.00, 9.99), // a fourth seed kd lacks is left out
	} {
		entries = append(entries, a...)
	}
	entries = append(entries, &Entry{Name: "eqtotal-kd-s1", Arm: "eqtotal-kd", Seed: 1, Kind: KindEqTotal, Student: "50%"}) // not evaluated
	cl := Claims(entries)
	want := []struct {
		base    string
		seeds   int
		diff    float64
		verdict Verdict
		reason  string
	}{
		{"scratch", 3, -0.5, Held, "lower loss than from scratch on every seed"},
		{"long", 3, 0.1, NotHeld, "the many-tokens baseline wins on every seed"},
		{"ce", 3, 0, Inconclusive, "differences of both signs: inside 2 standard errors"},
		{"depth", 2, -0.09, Inconclusive, "fewer seeds than the rule needs"},
		{"random", 3, -0.02, Held, "paired over the seeds both arms ran (the baseline's fourth is ignored)"},
	}
	if len(cl) != len(want) {
		t.Fatalf("%d claims, want %d (an unevaluated arm makes none): %+v", len(cl), len(want), cl)
	}
	for i, tc := range want {
		c := cl[i]
		if c.Baseline != tc.base || c.Seeds != tc.seeds || math.Abs(c.Diff.Mean-tc.diff) > 1e-9 || c.Verdict != tc.verdict {
			t.Errorf("%s: got baseline %s, %d seeds, difference %+.4f ± %.4f, %s; want %s, %d, %+.2f, %s",
				tc.reason, c.Baseline, c.Seeds, c.Diff.Mean, c.Diff.SE, c.Verdict, tc.base, tc.seeds, tc.diff, tc.verdict)
		}
		if math.Abs(c.OpticksDiff.Mean-c.Diff.Mean) > 1e-9 || c.OpticksVerdict != c.Verdict {
			t.Errorf("%s: Opticks losses are Go's + 1, so the same difference and verdict: %+v", tc.reason, c)
		}
		if c.Ours != "kd" || c.OursLoss.N != tc.seeds || c.GoAccStderr != 2.5 {
			t.Errorf("%s: ours %s over %d seeds, acc stderr %v", tc.reason, c.Ours, c.OursLoss.N, c.GoAccStderr)
		}
	}
	if !strings.Contains(cl[1].Claim, "8×") {
		t.Errorf("token multiple not in the claim text: %q", cl[1].Claim)
	}
	tab := ClaimsTable(cl)
	for _, s := range []string{"**held**", "**not held**", "**inconclusive**", "| 3.000 ± 0.020 | 3.500 ± 0.030 | -0.5000 ± 0.0058 (-86.6 SE) |"} {
		if !strings.Contains(tab, s) {
			t.Errorf("claims table lacks %q:\n%s", s, tab)
		}
	}
	n := CountVerdicts(cl)
	if n[Held] != 2 || n[NotHeld] != 1 || n[Inconclusive] != 2 {
		t.Errorf("verdict counts %v", n)
	}
	// The results table has one row per arm, the seed table one column per
	// seed.
	if tb := Table(entries); strings.Count(tb, "| kd |") != 1 || !strings.Contains(tb, "| 3 | 3.000 ± 0.020 |") {
		t.Errorf("results table:\n%s", tb)
	}
	if st := SeedTable(entries); !strings.Contains(st, "| random | 3.0200 | 3.0400 | 3.0000 | 9.9900 |") || !strings.Contains(st, "| depth | 3.1000 | 3.1000 | – | – |") {
		t.Errorf("seed table:\n%s", st)
	}
}

func TestEqTotalTarget(t *testing.T) {
	teacher, err := FullConfig().teacherConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, frac := range []float64{0.5, 0.25} {
		layers := depthTarget(teacher, frac)
		d := *teacher
		d.NumLayers = layers
		want := d.ParamCounts().Total
		et, err := eqTotalTarget(teacher, layers)
		if err != nil {
			t.Fatal(err)
		}
		s := et.Apply(teacher)
		got := s.ParamCounts().Total
		// The width grid (step 8 in hidden here) leaves a small gap.
		if math.Abs(float64(got-want))/float64(want) > 0.02 {
			t.Errorf("%g: width student %s has %d parameters, the %d-layer depth student %d: want within 2%%", frac, et, got, layers, want)
		}
		if s.NumLayers != teacher.NumLayers || s.ParamCounts().NonEmbedding <= d.ParamCounts().NonEmbedding {
			t.Errorf("%g: the equal-total width student %s keeps every layer and has more non-embedding parameters than the depth student", frac, et)
		}
	}
	// The embedding is a minority of the teacher (the point of a
	// deeper teacher with a smaller vocabulary).
	pc := teacher.ParamCounts()
	if emb := float64(pc.Total-pc.NonEmbedding) / float64(pc.Total); teacher.NumLayers < 8 || emb >= 0.25 {
		t.Errorf("teacher: %d layers, embedding %.0f%% of the parameters: want at least 8 layers and under 25%%", teacher.NumLayers, 100*emb)
	}
}

func TestISPairs(t *testing.T) {
	for _, tc := range []struct {
		layers int
		want   string
		reason string
	}{
		{8, "[{2 2} {4 4} {6 6} {8 8}]", "every quarter of the depth, the last being the final norm"},
		{2, "[{1 1} {2 2}]", "a shallow student: duplicates dropped"},
		{1, "[{1 1}]", "one layer: the final norm only"},
	} {
		if got := fmt.Sprint(isPairs(tc.layers)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.reason, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod    func(*Config)
		reason string
	}{
		{func(c *Config) { c.Vocab = 100 }, "vocabulary smaller than the byte alphabet"},
		{func(c *Config) { c.StudentFractions = nil }, "no students"},
		{func(c *Config) { c.StudentFractions = []float64{1.5} }, "a student larger than the teacher"},
		{func(c *Config) { c.TrainSplit = 1 }, "nothing held out"},
		{func(c *Config) { c.Teacher.Heads = 3 }, "hidden not divisible by heads"},
		{func(c *Config) { c.StudentTokens = 0 }, "no student tokens"},
		{func(c *Config) { c.Seeds = 0 }, "no seeds"},
	} {
		c := QuickConfig()
		tc.mod(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: no error", tc.reason)
		}
	}
	for _, c := range []Config{QuickConfig(), FullConfig(), tinyRunConfig()} {
		if err := c.validate(); err != nil {
			t.Errorf("preset %s: %v", c.Name, err)
		}
	}
}

func TestOtherCores(t *testing.T) {
	for _, tc := range []struct {
		r      Result
		want   string
		reason string
	}{
		{Result{BLASCore: "SkylakeX", Stages: []StageRun{{Name: "tokenizer"}, {Name: "teacher", BLASCore: "SkylakeX"}}}, "", "one kernel set throughout (CPU-only stages have none)"},
		{Result{BLASCore: "Haswell", Stages: []StageRun{{Name: "teacher", Skipped: true, BLASCore: "SkylakeX"}, {Name: "eval/teacher", BLASCore: "Haswell"}}}, "SkylakeX",
			"a cached stage from a run on another kernel set is named: its numbers carry that set's rounding"},
	} {
		if got := strings.Join(otherCores(&tc.r), ","); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.reason, got, tc.want)
		}
	}
}

func TestClaimNotes(t *testing.T) {
	ev := func(goLoss float64) *Eval {
		return &Eval{PPL: map[string]PPL{"go": {Loss: goLoss}, "opticks": {Loss: goLoss}}, Tasks: map[string]TaskScore{}}
	}
	entries := []*Entry{
		{Name: "w50-pruned", Arm: "w50-pruned", Kind: KindPruned, Student: "50%", Eval: ev(5.0)},
		{Name: "w50-depth-pruned", Arm: "w50-depth-pruned", Kind: KindPrunedDepth, Student: "50%", Eval: ev(4.4)},
		{Name: "w50-random-pruned", Arm: "w50-random-pruned", Kind: KindPrunedRandom, Student: "50%", Eval: ev(5.1)},
	}
	for k := 1; k <= 3; k++ {
		entries = append(entries,
			&Entry{Name: seedName("kd", k), Arm: "kd", Seed: k, Kind: KindMinitron, Student: "50%", Eval: ev(4.40 + 0.01*float64(k))},
			&Entry{Name: seedName("depth", k), Arm: "depth", Seed: k, Kind: KindDepth, Student: "50%", Eval: ev(4.30 + 0.01*float64(k))},
			&Entry{Name: seedName("ce", k), Arm: "ce", Seed: k, Kind: KindCE, Student: "50%", Eval: ev(4.40 + 0.011*float64(k))},
			&Entry{Name: seedName("random", k), Arm: "random", Seed: k, Kind: KindRandom, Student: "50%", Eval: ev(4.50 + 0.01*float64(k))})
	}
	notes := ClaimNotes(entries, Claims(entries))
	// kd vs depth: not held, different checkpoints (gap 0.6 → 0.1): a
	// note. kd vs ce: same checkpoint: none. kd vs random: held: none.
	if len(notes) != 1 || !strings.Contains(notes[0], "before retraining w50-pruned 5.000 vs w50-depth-pruned 4.400 (+0.600); after retraining +0.100: retraining closed 83% of the gap") {
		t.Errorf("notes: %q", notes)
	}
}
