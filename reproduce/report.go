package reproduce

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/eval"
	"github.com/minitron-dev/minitron/model"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Claim is one of the papers' claims tested on one student size. It is
// decided on the main corpus's (Go) held-out loss; the other corpus and the
// task accuracies are reported beside it and say whether they agree.
type Claim struct {
	Claim    string  `json:"claim"`
	Student  string  `json:"student"`
	Ours     string  `json:"ours"`
	Baseline string  `json:"baseline"`
	OursLoss float64 `json:"ours_go_loss"`
	BaseLoss float64 `json:"baseline_go_loss"`
	// Held: ours has the lower Go validation loss.
	Held bool `json:"held"`
	// Agreement of the secondary measures (true when ours is at least as
	// good): Opticks loss, Go and Opticks next-line accuracy.
	OpticksAgrees bool    `json:"opticks_loss_agrees"`
	GoAccOurs     float64 `json:"ours_go_acc"` // acc_norm, percent
	GoAccBase     float64 `json:"baseline_go_acc"`
	GoAccStderr   float64 `json:"go_acc_stderr"` // the larger of the two standard errors
	GoAccAgrees   bool    `json:"go_acc_agrees"`
	// Noise is how far the Minitron student's Go loss moved when it was
	// retrained on another data order (0: not measured); WithinNoise
	// marks a loss difference no larger than that.
	Noise       float64 `json:"seed_noise,omitempty"`
	WithinNoise bool    `json:"within_noise,omitempty"`
}

// SeedNoise is |Go loss of the Minitron student − the same retrained on
// another data order|, by student, and the first one measured (the
// yardstick for students without their own); ok is false when none was.
func SeedNoise(entries []*Entry) (by map[string]float64, first float64, ok bool) {
	by = map[string]float64{}
	var order []string
	for _, a := range entries {
		if a.Kind != KindMinitron || a.Eval == nil {
			continue
		}
		for _, b := range entries {
			if b.Kind == KindMinitronSeed && b.Student == a.Student && b.Eval != nil {
				by[a.Student] = math.Abs(a.Eval.PPL["go"].Loss - b.Eval.PPL["go"].Loss)
				order = append(order, a.Student)
			}
		}
	}
	if len(order) == 0 {
		return by, 0, false
	}
	return by, by[order[0]], true
}

// Claims compares the Minitron students with their baselines.
func Claims(entries []*Entry) []Claim {
	by := map[string]*Entry{}
	for _, e := range entries {
		by[e.Student+"|"+e.Kind] = e
	}
	var out []Claim
	noiseBy, noise0, haveNoise := SeedNoise(entries)
	var students []string
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Student != "" && !seen[e.Student] {
			seen[e.Student] = true
			students = append(students, e.Student)
		}
	}
	for _, s := range students {
		ours := by[s+"|"+KindMinitron]
		if ours == nil || ours.Eval == nil {
			continue
		}
		for _, cl := range []struct{ text, kind string }{
			{"pruned + distilled beats training from scratch on the same tokens", KindScratch},
			{"pruned + distilled beats from scratch with many times the tokens", KindScratchLong},
			{"distillation beats CE retraining of the same pruned model", KindCE},
			{"width pruning beats depth pruning (both distilled)", KindDepth},
			{"importance-based pruning beats random pruning (both distilled)", KindRandom},
		} {
			b := by[s+"|"+cl.kind]
			if b == nil || b.Eval == nil {
				continue
			}
			text := cl.text
			if cl.kind == KindScratchLong && ours.Tokens > 0 {
				text = fmt.Sprintf("pruned + distilled beats from scratch with %d× the tokens", b.Tokens/ours.Tokens)
			}
			c := Claim{Claim: text, Student: s, Ours: ours.Name, Baseline: b.Name,
				OursLoss: ours.Eval.PPL["go"].Loss, BaseLoss: b.Eval.PPL["go"].Loss,
				GoAccOurs: ours.Eval.Tasks["go"].AccNorm, GoAccBase: b.Eval.Tasks["go"].AccNorm}
			c.Held = c.OursLoss < c.BaseLoss
			c.OpticksAgrees = ours.Eval.PPL["opticks"].Loss <= b.Eval.PPL["opticks"].Loss
			c.GoAccAgrees = c.GoAccOurs >= c.GoAccBase
			c.GoAccStderr = max(ours.Eval.Tasks["go"].AccNormStderr, b.Eval.Tasks["go"].AccNormStderr)
			if haveNoise {
				c.Noise = noise0
				if n, ok := noiseBy[s]; ok {
					c.Noise = n
				}
				c.WithinNoise = math.Abs(c.OursLoss-c.BaseLoss) <= c.Noise
			}
			out = append(out, c)
		}
	}
	return out
}

// machine names the CPU and core count.
func machine() string {
	name := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				name = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if name == "" {
		name = runtime.GOARCH
	}
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS %d), %s/%s", name, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
}

func fmtTokens(n int64) string {
	if n == 0 {
		return "0"
	}
	return model.FormatParams(n)
}

func fmtDur(sec float64) string {
	return (time.Duration(sec) * time.Second).Round(time.Second).String()
}

func heldText(h bool) string {
	if h {
		return "**held**"
	}
	return "**not held**"
}

func verdict(c Claim) string {
	v := heldText(c.Held)
	if c.WithinNoise {
		v += fmt.Sprintf(" (within seed noise, %.3f)", c.Noise)
	}
	return v
}

func agree(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (p *pipeline) report() error {
	if err := os.MkdirAll(p.path("plots"), 0o755); err != nil {
		return err
	}
	plots, err := p.plots()
	if err != nil {
		return err
	}
	md := p.markdown(plots)
	if err := atomicfile.WriteFile(p.path("REPORT.md"), []byte(md), nil); err != nil {
		return err
	}
	return writeJSON(p.path("results.json"), p.res)
}

// Table renders the model-card style results table.
func Table(entries []*Entry) string {
	var b strings.Builder
	b.WriteString("| Model | Kind | Shape (L/H/heads/FFN) | Params | Non-emb. params | Training tokens | Go val loss | Go ppl | Opticks val loss | Opticks ppl | Go next-line acc (%) | Opticks next-line acc (%) |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, e := range entries {
		a := e.Arch
		fmt.Fprintf(&b, "| %s | %s | %d/%d/%d/%d | %s | %s | %s |", e.Name, e.Kind, a.Layers, a.Hidden, a.Heads, a.FFN,
			model.FormatParams(e.Params), model.FormatParams(e.NonEmbParams), fmtTokens(e.Tokens))
		if e.Eval == nil {
			b.WriteString(" – | – | – | – | – | – |\n")
			continue
		}
		for _, c := range Corpora {
			r := e.Eval.PPL[c.Key]
			fmt.Fprintf(&b, " %.3f | %.1f |", r.Loss, r.PPL)
		}
		for _, c := range Corpora {
			t := e.Eval.Tasks[c.Key]
			fmt.Fprintf(&b, " %.1f ± %.1f |", t.AccNorm, t.AccNormStderr)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ClaimsTable renders the claims with their numbers.
func ClaimsTable(claims []Claim) string {
	var b strings.Builder
	b.WriteString("| Claim | Student | Ours → baseline | Go val loss (ours vs baseline) | Verdict | Opticks loss agrees | Go next-line acc_norm % (ours vs baseline, ± stderr) |\n")
	b.WriteString("|---|---|---|---:|---|---|---:|\n")
	for _, c := range claims {
		fmt.Fprintf(&b, "| %s | %s | %s → %s | %.3f vs %.3f (%+.3f) | %s | %s | %.1f vs %.1f (± %.1f) |\n",
			c.Claim, c.Student, c.Ours, c.Baseline, c.OursLoss, c.BaseLoss, c.OursLoss-c.BaseLoss,
			verdict(c), agree(c.OpticksAgrees), c.GoAccOurs, c.GoAccBase, c.GoAccStderr)
	}
	return b.String()
}

func (p *pipeline) markdown(plots []string) string {
	c := p.c
	r := p.res
	var b strings.Builder
	fmt.Fprintf(&b, "# Minitron in miniature: reproduction report (%s)\n\n", c.Name)
	fmt.Fprintf(&b, "Generated by `minitron reproduce` on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- Machine: %s\n", r.Machine)
	fmt.Fprintf(&b, "- Device: %s\n", deviceLine(r))
	var work float64
	for _, s := range r.Stages {
		work += s.Seconds
	}
	fmt.Fprintf(&b, "- Compute time of all stages: %s (the sum of each stage's own run time, whenever it ran); this invocation: %s, %d of %d stages taken from the cache\n",
		fmtDur(work), fmtDur(r.Seconds), r.Skipped(), len(r.Stages))
	tc, _ := c.teacherConfig()
	pc := tc.ParamCounts()
	fmt.Fprintf(&b, "- Teacher: nemotron, %s, vocab %d: %s parameters (%s non-embedding), trained from random init on %s tokens\n",
		c.Teacher, c.Vocab, model.FormatParams(pc.Total), model.FormatParams(pc.NonEmbedding), fmtTokens(c.TeacherTokens))
	fmt.Fprintf(&b, "- Students: %s of the teacher's non-embedding parameters, each retrained on %s tokens (sequence %d × batch %d); the from-scratch \"many tokens\" baseline gets %d× that\n",
		fracList(c.StudentFractions), fmtTokens(c.StudentTokens), c.SeqLen, c.Batch, c.LongMultiple)
	for _, cp := range Corpora {
		if m, err := data.ReadManifest(data.ManifestPath(p.path("data", cp.Key))); err == nil {
			fmt.Fprintf(&b, "- %s corpus: %d training documents (%s tokens), %d held-out documents (%s tokens)\n", cp.Label,
				m.Splits["train"].Documents, fmtTokens(m.Splits["train"].Tokens), m.Splits["val"].Documents, fmtTokens(m.Splits["val"].Tokens))
		}
	}
	fmt.Fprintf(&b, "- Training mix: %.0f%% Go, %.0f%% Opticks. Evaluation: the first %d held-out tokens of each corpus (windows of %d), and %d-way next-line tasks of %d items per corpus in HellaSwag format (context: %d lines of a held-out document; distractors: lines of other held-out documents)\n\n",
		100*(1-c.OpticksWeight), 100*c.OpticksWeight, c.EvalTokens, c.SeqLen, c.MCChoices, c.MCItems, c.MCContext)

	b.WriteString("## Results\n\n")
	b.WriteString(Table(r.Models))
	b.WriteString("\nLoss is the mean negative log-likelihood per token in nats (lower is better); accuracy is lm-eval's `acc_norm` (log-likelihood per character of the ending, HellaSwag's headline metric) ± its standard error; `acc` is in results.json. Training tokens of a pruned student are its retraining tokens; its teacher saw " + fmtTokens(c.TeacherTokens) + " more.\n\n")

	b.WriteString("## The papers' claims at this scale\n\n")
	b.WriteString("Each claim is decided on the held-out Go loss (the main corpus); the other columns say whether the secondary measures agree.\n\n")
	b.WriteString(ClaimsTable(r.Claims))
	held := 0
	for _, cl := range r.Claims {
		if cl.Held {
			held++
		}
	}
	fmt.Fprintf(&b, "\n%d of %d claim checks held.", held, len(r.Claims))
	if by, _, ok := SeedNoise(r.Models); ok {
		var parts []string
		for _, e := range r.Models {
			if n, ok := by[e.Student]; ok && e.Kind == KindMinitron {
				parts = append(parts, fmt.Sprintf("%s retrained on another data order moved the Go loss by %.3f", e.Name, n))
			}
		}
		fmt.Fprintf(&b, " Seed noise: %s; loss differences no larger than that are marked \"within seed noise\" (students without their own repeat are measured against the same yardstick).", strings.Join(parts, "; "))
	}
	b.WriteString(" An accuracy difference within about two standard errors is within the noise of the evaluation sample.\n\n")

	if note := depthNote(r.Models); note != "" {
		b.WriteString(note + "\n\n")
	}

	if len(plots) > 0 {
		b.WriteString("## Plots\n\n")
		for _, pl := range plots {
			fmt.Fprintf(&b, "![%s](plots/%s)\n\n", strings.TrimSuffix(pl, ".png"), pl)
		}
	}

	b.WriteString("## Recipe\n\n")
	fmt.Fprintf(&b, "- Teacher and from-scratch baselines: CE, AdamW (weight decay 0.01), peak LR %g, 5%% warmup, cosine to LR/10.\n", c.TeacherLR)
	fmt.Fprintf(&b, "- Pruned students (KD or CE retraining): peak LR %g, same schedule; KD is forward KL(teacher‖student) on the logits only, τ = 1, no CE term (the papers' best).\n", c.StudentLR)
	fmt.Fprintf(&b, "- Importance: %d calibration sequences of %d Go training tokens; heads, neurons and embedding channels by activation (batch L2, sequence mean); layers by drop-one LM loss (depth baseline).\n", c.CalibSamples, c.SeqLen)
	b.WriteString("- Width pruning: the papers' recipe (layers and heads kept; MLP cut first to 2/3, then embedding channels), aimed at the stated fraction of non-embedding parameters. Depth pruning: the same fraction of layers kept, the least important by loss dropped. Random: the width shape with random channels/neurons kept.\n")
	b.WriteString("- Every student run sees the same data order (same seed).\n\n")

	b.WriteString("## Stages\n\n| Stage | Seconds | Cached | Device |\n|---|---:|---|---|\n")
	for _, s := range r.Stages {
		dev := s.Device
		if s.GPU != "" {
			dev += ", " + s.GPU
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s |\n", s.Name, s.Seconds, agree(s.Skipped), dev)
	}
	return b.String()
}

// deviceLine says where the figures were computed: the run's device and
// GPU, and other GPUs that cached stages came from.
func deviceLine(r *Result) string {
	if r.GPU == "" {
		return r.Device + " (every stage)"
	}
	line := fmt.Sprintf("%s on GPU 0, %s: training, distillation, importance scoring and evaluation; tokenizer, data, tasks and pruning on the CPU", r.Device, r.GPU)
	seen := map[string]bool{r.GPU: true}
	for _, s := range r.Stages {
		if s.GPU != "" && !seen[s.GPU] {
			seen[s.GPU] = true
			line += fmt.Sprintf("; cached stages from an earlier invocation ran on %s (Stages table)", s.GPU)
		}
	}
	return line
}

// depthNote points out the confound of the width-vs-depth comparison at
// small scale: students are matched on non-embedding parameters (as the
// papers count them), but a depth-pruned student keeps the teacher's full
// embedding, which dominates a small model's size.
func depthNote(entries []*Entry) string {
	var parts []string
	for _, w := range entries {
		if w.Kind != KindMinitron {
			continue
		}
		for _, d := range entries {
			if d.Kind == KindDepth && d.Student == w.Student && float64(d.Params) > 1.2*float64(w.Params) {
				parts = append(parts, fmt.Sprintf("%s: %s vs %s total (%s vs %s non-embedding)", w.Student,
					model.FormatParams(d.Params), model.FormatParams(w.Params), model.FormatParams(d.NonEmbParams), model.FormatParams(w.NonEmbParams)))
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Note on width vs depth: the students are matched on non-embedding parameters, as the papers count them, " +
		"but a depth-pruned student keeps the teacher's full hidden size and so its whole embedding, which dominates a model this small. " +
		"Depth vs width students here: " + strings.Join(parts, "; ") + ". At the papers' scale the embedding is a few percent of the model and this confound disappears."
}

func fracList(f []float64) string {
	var s []string
	for _, x := range f {
		s = append(s, studentLabel(x))
	}
	return strings.Join(s, " and ")
}

// plots writes the loss curves (teacher; one figure per student size) and
// accuracy against parameters, and returns their file names.
func (p *pipeline) plots() ([]string, error) {
	var names []string
	groups := map[string][]*eval.Curve{}
	var order []string
	for _, e := range p.res.Models {
		if e.Run == "" {
			continue
		}
		cv, err := eval.ReadCurve(p.path(e.Run))
		if err != nil {
			return nil, err
		}
		cv.Name = e.Name
		g := e.Student
		if g == "" {
			g = "teacher"
		}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], cv)
	}
	for _, g := range order {
		name := "loss_" + strings.TrimSuffix(g, "%") + ".png"
		title := "teacher, held-out Go"
		if g != "teacher" {
			title = fmt.Sprintf("%s students, held-out Go", g)
		}
		if err := eval.PlotCurves(groups[g], p.path("plots", name), eval.PlotOptions{Title: title}); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	for _, cp := range Corpora {
		name := "accuracy_vs_params_" + cp.Key + ".png"
		if err := p.accuracyPlot(cp.Key, cp.Label, p.path("plots", name)); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

// accuracyPlot draws next-line accuracy against non-embedding parameters,
// one marker style per kind of model.
func (p *pipeline) accuracyPlot(key, label, out string) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s next-line task: accuracy vs parameters", label)
	pl.X.Label.Text = "non-embedding parameters (millions)"
	pl.Y.Label.Text = "acc_norm (%)"
	pl.Legend.Top = true // top right, beside the teacher: the x axis is stretched to leave room
	kinds := []string{}
	byKind := map[string]plotter.XYs{}
	for _, e := range p.res.Models {
		if e.Eval == nil {
			continue
		}
		if _, ok := byKind[e.Kind]; !ok {
			kinds = append(kinds, e.Kind)
		}
		byKind[e.Kind] = append(byKind[e.Kind], plotter.XY{X: float64(e.NonEmbParams) / 1e6, Y: e.Eval.Tasks[key].AccNorm})
	}
	sort.SliceStable(kinds, func(i, j int) bool { return kindRank(kinds[i]) < kindRank(kinds[j]) })
	gray := color.RGBA{120, 120, 120, 255}
	styles := map[string]struct {
		c     color.Color
		shape draw.GlyphDrawer
	}{
		KindTeacher:      {color.RGBA{0, 0, 0, 255}, draw.CircleGlyph{}},
		KindMinitron:     {color.RGBA{118, 185, 0, 255}, draw.CircleGlyph{}},
		KindMinitronSeed: {color.RGBA{118, 185, 0, 255}, draw.RingGlyph{}},
		KindCE:           {color.RGBA{31, 119, 180, 255}, draw.SquareGlyph{}},
		KindDepth:        {color.RGBA{214, 39, 40, 255}, draw.PyramidGlyph{}},
		KindRandom:       {color.RGBA{148, 103, 189, 255}, draw.CrossGlyph{}},
		KindScratch:      {color.RGBA{255, 127, 14, 255}, draw.PlusGlyph{}},
		KindScratchLong:  {color.RGBA{140, 86, 75, 255}, draw.RingGlyph{}},
		KindPruned:       {gray, draw.BoxGlyph{}},
		KindPrunedDepth:  {gray, draw.TriangleGlyph{}},
		KindPrunedRandom: {gray, draw.CrossGlyph{}},
	}
	for _, k := range kinds {
		s, err := plotter.NewScatter(byKind[k])
		if err != nil {
			return err
		}
		st, ok := styles[k]
		if !ok {
			st.c, st.shape = gray, draw.RingGlyph{}
		}
		s.GlyphStyle.Color = st.c
		s.GlyphStyle.Shape = st.shape
		s.GlyphStyle.Radius = vg.Points(4)
		if k == KindMinitron {
			s.GlyphStyle.Radius = vg.Points(6)
		}
		pl.Add(s)
		pl.Legend.Add(k, s)
	}
	chance := 100 / float64(max(1, p.c.MCChoices))
	ln, err := plotter.NewLine(plotter.XYs{{X: 0, Y: chance}, {X: float64(p.maxNonEmb()) / 1e6 * 2, Y: chance}})
	if err != nil {
		return err
	}
	ln.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	ln.LineStyle.Color = color.RGBA{160, 160, 160, 255}
	pl.Add(ln)
	pl.Legend.Add("chance", ln)
	pl.X.Min = 0
	pl.X.Max = float64(p.maxNonEmb()) / 1e6 * 2
	tmp := out + ".tmp.png"
	if err := pl.Save(10*vg.Inch, 5*vg.Inch, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plot %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

func (p *pipeline) maxNonEmb() int64 {
	var m int64
	for _, e := range p.res.Models {
		m = max(m, e.NonEmbParams)
	}
	return m
}

func kindRank(k string) int {
	for i, x := range []string{KindTeacher, KindMinitron, KindMinitronSeed, KindCE, KindDepth, KindRandom, KindScratch, KindScratchLong, KindPruned, KindPrunedDepth, KindPrunedRandom} {
		if k == x {
			return i
		}
	}
	return 99
}
