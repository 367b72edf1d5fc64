package reproduce

import (
	"context"
	"encoding/json"
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
			if n := e.Eval.Tasks[c.Key].N; n != cfg.MCItems {
				t.Fatalf("%s: %s task has %d items, want %d", e.Name, c.Key, n, cfg.MCItems)
			}
		}
	}
	for _, k := range []string{KindTeacher, KindMinitron, KindMinitronSeed, KindCE, KindDepth, KindRandom, KindScratch, KindScratchLong, KindPruned} {
		if kinds[k] == 0 {
			t.Errorf("no %q model in the results", k)
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
	if len(res.Claims) != 9 {
		t.Errorf("%d claim checks, want 9 (5 for the first student, 4 for the second)", len(res.Claims))
	}

	rep, err := os.ReadFile(filepath.Join(out, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Results", "| w50-kd |", "## The papers' claims", "width pruning beats depth pruning", "plots/accuracy_vs_params_go.png", "plots/loss_50.png"} {
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
	for _, dir := range []string{"train/w50-kd/model", "prune/w25/model"} {
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
		if tc.frac == 0.9 && s.HiddenSize != teacher.HiddenSize {
			t.Errorf("%s: hidden cut to %d", tc.reason, s.HiddenSize)
		}
	}
}

func TestClaims(t *testing.T) {
	ev := func(goLoss, opLoss, acc float64) *Eval {
		return &Eval{PPL: map[string]PPL{"go": {Loss: goLoss}, "opticks": {Loss: opLoss}},
			Tasks: map[string]TaskScore{"go": {AccNorm: acc}}}
	}
	entries := []*Entry{
		{Name: "teacher", Kind: KindTeacher, Eval: ev(2, 3, 50)},
		{Name: "kd", Kind: KindMinitron, Student: "50%", Tokens: 100, Eval: ev(3.0, 4.0, 40)},
		{Name: "scratch", Kind: KindScratch, Student: "50%", Tokens: 100, Eval: ev(3.5, 4.5, 30)},
		{Name: "long", Kind: KindScratchLong, Student: "50%", Tokens: 800, Eval: ev(2.9, 3.9, 45)},
		{Name: "ce", Kind: KindCE, Student: "50%", Tokens: 100, Eval: ev(3.1, 3.9, 40)},
		{Name: "depth", Kind: KindDepth, Student: "50%", Tokens: 100, Eval: nil},
	}
	cl := Claims(entries)
	for i, tc := range []struct {
		base      string
		held      bool
		opAgrees  bool
		accAgrees bool
		reason    string
	}{
		{"scratch", true, true, true, "lower loss than from scratch"},
		{"long", false, false, false, "the many-tokens baseline wins: reported as not held"},
		{"ce", true, false, true, "Go decides; Opticks disagreeing is only reported"},
	} {
		if i >= len(cl) {
			t.Fatalf("only %d claims: %+v", len(cl), cl)
		}
		c := cl[i]
		if c.Baseline != tc.base || c.Held != tc.held || c.OpticksAgrees != tc.opAgrees || c.GoAccAgrees != tc.accAgrees {
			t.Errorf("%s: got %+v", tc.reason, c)
		}
	}
	if len(cl) != 3 {
		t.Errorf("an unevaluated baseline must not make a claim: %d claims", len(cl))
	}
	for _, c := range cl {
		if c.Noise != 0 || c.WithinNoise {
			t.Errorf("seed noise reported without a repeat run: %+v", c)
		}
	}
	if !strings.Contains(cl[1].Claim, "8×") {
		t.Errorf("token multiple not in the claim text: %q", cl[1].Claim)
	}
	tab := ClaimsTable(cl)
	if strings.Count(tab, "**not held**") != 1 || strings.Count(tab, "**held**") != 2 {
		t.Errorf("verdicts not rendered:\n%s", tab)
	}
}

func TestClaimsSeedNoise(t *testing.T) {
	ev := func(goLoss float64) *Eval {
		return &Eval{PPL: map[string]PPL{"go": {Loss: goLoss}, "opticks": {Loss: 1}}, Tasks: map[string]TaskScore{}}
	}
	entries := []*Entry{
		{Name: "kd", Kind: KindMinitron, Student: "50%", Eval: ev(3.00)},
		{Name: "kd-seed2", Kind: KindMinitronSeed, Student: "50%", Eval: ev(3.05)},
		{Name: "ce", Kind: KindCE, Student: "50%", Eval: ev(3.10)},
		{Name: "random", Kind: KindRandom, Student: "50%", Eval: ev(3.02)},
		{Name: "kd25", Kind: KindMinitron, Student: "25%", Eval: ev(4.00)},
		{Name: "depth25", Kind: KindDepth, Student: "25%", Eval: ev(3.97)},
	}
	for _, tc := range []struct {
		base   string
		held   bool
		within bool
		reason string
	}{
		{"ce", true, false, "0.10 apart, more than the 0.05 the seed moved"},
		{"random", true, true, "0.02 apart: held, but within seed noise"},
		{"depth25", false, true, "the 25% student has no repeat: the 50% yardstick applies"},
	} {
		var found bool
		for _, c := range Claims(entries) {
			if c.Baseline != tc.base {
				continue
			}
			found = true
			if c.Held != tc.held || c.WithinNoise != tc.within || math.Abs(c.Noise-0.05) > 1e-9 {
				t.Errorf("%s: got %+v", tc.reason, c)
			}
		}
		if !found {
			t.Errorf("%s: no claim against %s", tc.reason, tc.base)
		}
	}
	if tab := ClaimsTable(Claims(entries)); !strings.Contains(tab, "within seed noise, 0.050") {
		t.Errorf("noise not rendered:\n%s", tab)
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
