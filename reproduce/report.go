package reproduce

import (
	"bufio"
	"fmt"
	"image/color"
	"math"
	"os"
	"runtime"
	"slices"
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

// Claim is one of the papers' claims tested on one student size over the
// seeds both arms ran. It is decided on the main corpus's (Go) held-out
// loss by Decide (VerdictRule); the other corpus and the task accuracies
// are reported beside it.
type Claim struct {
	Claim    string `json:"claim"`
	Student  string `json:"student"`
	Ours     string `json:"ours"`     // arm
	Baseline string `json:"baseline"` // arm
	Seeds    int    `json:"seeds"`    // seeds both arms ran (the pairs)
	// Go held-out loss of each arm over its seeds, and the paired
	// difference ours − baseline (negative: ours is better).
	OursLoss Summary `json:"ours_go_loss"`
	BaseLoss Summary `json:"baseline_go_loss"`
	Diff     Paired  `json:"go_loss_diff"`
	Verdict  Verdict `json:"verdict"`
	// The same on the Opticks loss (secondary: reported, not deciding).
	OpticksDiff    Paired  `json:"opticks_loss_diff"`
	OpticksVerdict Verdict `json:"opticks_verdict"`
	// Go next-line acc_norm (percent) of the runs that took the task (seed
	// 1: Pipeline.evaluate), and the larger of the two arms' standard
	// errors over the task's items.
	GoAccOurs   Summary `json:"ours_go_acc"`
	GoAccBase   Summary `json:"baseline_go_acc"`
	GoAccStderr float64 `json:"go_acc_stderr"`
}

// claimSpecs are the claims, each comparing two kinds of student of one
// size. Claims whose baseline is missing for a size (the many-tokens
// baseline and the loss ablation run for the first size only) are left
// out.
var claimSpecs = []struct{ text, ours, base string }{
	{"pruned + distilled beats training from scratch on the same tokens", KindMinitron, KindScratch},
	{"pruned + distilled beats from scratch with many times the tokens", KindMinitron, KindScratchLong},
	{"distillation beats CE retraining of the same pruned model", KindMinitron, KindCE},
	{"width beats depth pruning at equal non-embedding parameters (both distilled)", KindMinitron, KindDepth},
	{"width beats depth pruning at equal total parameters (both distilled)", KindEqTotal, KindDepth},
	{"importance-based pruning beats random pruning (both distilled)", KindMinitron, KindRandom},
	{"logits-only KD beats KD + CE", KindMinitron, KindKDCE},
	{"logits-only KD beats KD + intermediate-state loss", KindMinitron, KindKDIS},
}

// armKey groups the seeded runs of one arm.
func armKey(student, kind string) string { return student + "|" + kind }

// seededArms maps each arm (student size and kind) to its evaluated runs
// by seed.
func seededArms(entries []*Entry) map[string]map[int]*Entry {
	by := map[string]map[int]*Entry{}
	for _, e := range entries {
		if e.Seed < 1 || e.Eval == nil {
			continue
		}
		k := armKey(e.Student, e.Kind)
		if by[k] == nil {
			by[k] = map[int]*Entry{}
		}
		by[k][e.Seed] = e
	}
	return by
}

// Claims compares the Minitron students with their baselines, seed by
// seed.
func Claims(entries []*Entry) []Claim {
	arms := seededArms(entries)
	var students []string
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Student != "" && !seen[e.Student] {
			seen[e.Student] = true
			students = append(students, e.Student)
		}
	}
	var out []Claim
	for _, s := range students {
		for _, cs := range claimSpecs {
			ours, base := arms[armKey(s, cs.ours)], arms[armKey(s, cs.base)]
			var seeds []int
			for k := range ours {
				if base[k] != nil {
					seeds = append(seeds, k)
				}
			}
			if len(seeds) == 0 {
				continue
			}
			sort.Ints(seeds)
			col := func(arm map[int]*Entry, f func(*Eval) float64) []float64 {
				var x []float64
				for _, k := range seeds {
					x = append(x, f(arm[k].Eval))
				}
				return x
			}
			goLoss := func(e *Eval) float64 { return e.PPL["go"].Loss }
			opLoss := func(e *Eval) float64 { return e.PPL["opticks"].Loss }
			goAcc := func(arm map[int]*Entry) Summary {
				var es []*Entry
				for _, k := range seeds {
					es = append(es, arm[k])
				}
				return accSummary(es, "go")
			}
			o1, b1 := ours[seeds[0]], base[seeds[0]]
			text := cs.text
			if cs.base == KindScratchLong && o1.Tokens > 0 {
				text = fmt.Sprintf("pruned + distilled beats from scratch with %d× the tokens", b1.Tokens/o1.Tokens)
			}
			c := Claim{Claim: text, Student: s, Ours: o1.Arm, Baseline: b1.Arm, Seeds: len(seeds),
				OursLoss: Summarize(col(ours, goLoss)), BaseLoss: Summarize(col(base, goLoss)),
				GoAccOurs: goAcc(ours), GoAccBase: goAcc(base),
				GoAccStderr: max(o1.Eval.Tasks["go"].AccNormStderr, b1.Eval.Tasks["go"].AccNormStderr)}
			c.Diff, _ = PairedDiff(col(ours, goLoss), col(base, goLoss)) // same lengths by construction
			c.OpticksDiff, _ = PairedDiff(col(ours, opLoss), col(base, opLoss))
			c.Verdict, c.OpticksVerdict = Decide(c.Diff), Decide(c.OpticksDiff)
			out = append(out, c)
		}
	}
	return out
}

// prunedKind is the kind of the checkpoint an arm of kind k retrains (""
// for the from-scratch baselines).
func prunedKind(k string) string {
	switch k {
	case KindMinitron, KindCE, KindKDCE, KindKDIS:
		return KindPruned
	case KindDepth:
		return KindPrunedDepth
	case KindEqTotal:
		return KindPrunedEqTotal
	case KindRandom:
		return KindPrunedRandom
	}
	return ""
}

// ClaimNotes explains, as far as the data goes, each claim that was not
// held whose two arms start from different pruned checkpoints: the gap in
// held-out Go loss before retraining and what retraining made of it.
func ClaimNotes(entries []*Entry, claims []Claim) []string {
	before := map[string]*Entry{}
	kindOf := map[string]string{} // arm → kind
	for _, e := range entries {
		kindOf[e.Arm] = e.Kind
		if e.Seed == 0 && e.Eval != nil {
			before[armKey(e.Student, e.Kind)] = e
		}
	}
	var out []string
	for _, c := range claims {
		if c.Verdict == Held {
			continue
		}
		po, pb := prunedKind(kindOf[c.Ours]), prunedKind(kindOf[c.Baseline])
		o, b := before[armKey(c.Student, po)], before[armKey(c.Student, pb)]
		if po == "" || pb == "" || po == pb || o == nil || b == nil {
			continue
		}
		d0 := o.Eval.PPL["go"].Loss - b.Eval.PPL["go"].Loss
		d1 := c.OursLoss.Mean - c.BaseLoss.Mean
		what := "the gap grew"
		if math.Abs(d1) < math.Abs(d0) {
			what = fmt.Sprintf("retraining closed %.0f%% of the gap", 100*(1-math.Abs(d1)/math.Abs(d0)))
		}
		out = append(out, fmt.Sprintf("%s (%s, %s): before retraining %s %.3f vs %s %.3f (%+.3f); after retraining %+.3f: %s.",
			c.Claim, c.Student, verdictText(c.Verdict), o.Name, o.Eval.PPL["go"].Loss, b.Name, b.Eval.PPL["go"].Loss, d0, d1, what))
	}
	return out
}

// CountVerdicts counts the claims by verdict.
func CountVerdicts(claims []Claim) map[Verdict]int {
	n := map[Verdict]int{}
	for _, c := range claims {
		n[c.Verdict]++
	}
	return n
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

// loadAvg is the 1, 5 and 15 minute load averages ("" where unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], ", ")
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

func verdictText(v Verdict) string { return "**" + string(v) + "**" }

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

// armRows groups entries by arm, in first-seen order.
func armRows(entries []*Entry) [][]*Entry {
	var rows [][]*Entry
	at := map[string]int{}
	for _, e := range entries {
		arm := e.armName()
		i, ok := at[arm]
		if !ok {
			i = len(rows)
			at[arm] = i
			rows = append(rows, nil)
		}
		rows[i] = append(rows[i], e)
	}
	return rows
}

// armName is the entry's arm, or its name in a results.json written
// before arms were recorded.
func (e *Entry) armName() string {
	if e.Arm == "" {
		return e.Name
	}
	return e.Arm
}

// trainedArms counts the seeded (trained student) arms.
func trainedArms(entries []*Entry) int {
	n := 0
	for _, es := range armRows(entries) {
		if es[0].Seed > 0 {
			n++
		}
	}
	return n
}

// evaluated reports whether any of an arm's runs was evaluated.
func evaluated(es []*Entry) bool {
	return slices.ContainsFunc(es, func(e *Entry) bool { return e.Eval != nil })
}

// armSummary summarises f over an arm's evaluated runs.
func armSummary(es []*Entry, f func(*Eval) float64) Summary {
	var x []float64
	for _, e := range es {
		if e.Eval != nil {
			x = append(x, f(e.Eval))
		}
	}
	return Summarize(x)
}

// accSummary summarises an arm's next-line accuracy on corpus over the runs
// that took the task (seed 1 of a seeded arm).
func accSummary(es []*Entry, corpus string) Summary {
	var x []float64
	for _, e := range es {
		if e.Eval == nil {
			continue
		}
		if t, ok := e.Eval.Tasks[corpus]; ok {
			x = append(x, t.AccNorm)
		}
	}
	return Summarize(x)
}

func fmtAcc(s Summary) string {
	if s.N == 0 {
		return "–"
	}
	return s.format("%.1f")
}

// Table renders the model-card style results table: one row per arm, the
// mean ± sample standard deviation over its seeds.
func Table(entries []*Entry) string {
	var b strings.Builder
	b.WriteString("| Model | Kind | Shape (L/H/heads/FFN) | Params | Non-emb. params | Training tokens | Seeds | Go val loss | Opticks val loss | Go next-line acc (%) | Opticks next-line acc (%) |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, es := range armRows(entries) {
		e := es[0]
		a := e.Arch
		fmt.Fprintf(&b, "| %s | %s | %d/%d/%d/%d | %s | %s | %s | %d |", e.armName(), e.Kind, a.Layers, a.Hidden, a.Heads, a.FFN,
			model.FormatParams(e.Params), model.FormatParams(e.NonEmbParams), fmtTokens(e.Tokens), len(es))
		if !evaluated(es) {
			b.WriteString(" – | – | – | – |\n")
			continue
		}
		for _, c := range Corpora {
			fmt.Fprintf(&b, " %s |", armSummary(es, func(ev *Eval) float64 { return ev.PPL[c.Key].Loss }))
		}
		for _, c := range Corpora {
			fmt.Fprintf(&b, " %s |", fmtAcc(accSummary(es, c.Key)))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// SeedTable lists every seeded arm's Go held-out loss seed by seed.
func SeedTable(entries []*Entry) string {
	n := 0
	for _, e := range entries {
		n = max(n, e.Seed)
	}
	if n == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| Arm |")
	for k := 1; k <= n; k++ {
		fmt.Fprintf(&b, " seed %d |", k)
	}
	b.WriteString(" mean ± sd |\n|---|" + strings.Repeat("---:|", n+1) + "\n")
	for _, es := range armRows(entries) {
		if es[0].Seed == 0 {
			continue
		}
		cells := make([]string, n)
		for i := range cells {
			cells[i] = "–"
		}
		for _, e := range es {
			if e.Eval != nil {
				cells[e.Seed-1] = fmt.Sprintf("%.4f", e.Eval.PPL["go"].Loss)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", es[0].Arm, strings.Join(cells, " | "),
			armSummary(es, func(ev *Eval) float64 { return ev.PPL["go"].Loss }))
	}
	return b.String()
}

func fmtDiff(p Paired) string {
	if p.N < 2 || math.IsNaN(p.SE) {
		return fmt.Sprintf("%+.4f", p.Mean)
	}
	z := p.Z()
	zs := fmt.Sprintf("%.1f", z)
	if math.IsInf(z, 0) || math.IsNaN(z) {
		zs = fmt.Sprint(z)
	}
	return fmt.Sprintf("%+.4f ± %.4f (%s SE)", p.Mean, p.SE, zs)
}

// ClaimsTable renders the claims: each arm's mean ± sd over the seeds, the
// paired difference with its standard error (the effect next to its
// noise), and the verdict.
func ClaimsTable(claims []Claim) string {
	var b strings.Builder
	b.WriteString("| Claim | Student | Ours → baseline | Seeds | Go val loss, ours | Go val loss, baseline | Difference ± SE (ours − baseline) | Verdict | Opticks loss: difference ± SE, verdict | Go next-line acc_norm %, ours vs baseline (item SE) |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---|---|---:|\n")
	for _, c := range claims {
		fmt.Fprintf(&b, "| %s | %s | %s → %s | %d | %s | %s | %s | %s | %s, %s | %s vs %s (± %.1f) |\n",
			c.Claim, c.Student, c.Ours, c.Baseline, c.Seeds, c.OursLoss, c.BaseLoss, fmtDiff(c.Diff), verdictText(c.Verdict),
			fmtDiff(c.OpticksDiff), c.OpticksVerdict, fmtAcc(c.GoAccOurs), fmtAcc(c.GoAccBase), c.GoAccStderr)
	}
	return b.String()
}

func (p *pipeline) markdown(plots []string) string {
	c := p.c
	r := p.res
	var b strings.Builder
	fmt.Fprintf(&b, "# Minitron in miniature: reproduction report (%s)\n\n", c.Name)
	fmt.Fprintf(&b, "Generated by `minitron reproduce` on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- Machine: %s; OpenBLAS core type %s", r.Machine, r.BLASCore)
	if other := otherCores(r); len(other) > 0 {
		fmt.Fprintf(&b, " (cached stages from an earlier invocation ran on %s: Stages table)", strings.Join(other, ", "))
	}
	// The load only matters to the stages this invocation ran.
	if r.LoadStart != "" && r.Skipped() < len(r.Stages) {
		fmt.Fprintf(&b, "; load average (1, 5, 15 min) %s at the start, %s at the end", r.LoadStart, r.LoadEnd)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Device: %s\n", deviceLine(r))
	var work float64
	for _, s := range r.Stages {
		work += s.Seconds
	}
	fmt.Fprintf(&b, "- Compute time of all stages: %s (the sum of each stage's own run time, whenever it ran); this invocation: %s, %d of %d stages taken from the cache\n",
		fmtDur(work), fmtDur(r.Seconds), r.Skipped(), len(r.Stages))
	tc, _ := c.teacherConfig()
	pc := tc.ParamCounts()
	fmt.Fprintf(&b, "- Teacher: nemotron, %s, vocab %d: %s parameters (%s non-embedding; the embedding and output layer are %.0f%%), trained from random init on %s tokens\n",
		c.Teacher, c.Vocab, model.FormatParams(pc.Total), model.FormatParams(pc.NonEmbedding), 100*float64(pc.Total-pc.NonEmbedding)/float64(pc.Total), fmtTokens(c.TeacherTokens))
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

	b.WriteString("## Protocol\n\n")
	fmt.Fprintf(&b, "- Seeds: every trained student arm runs %d times, seed k with seed %d+k−1; the seed sets its data order and, for the from-scratch baselines, its initialisation and, for random pruning, the channels kept. Seed k of every arm sees the same data order, so two arms are compared by the **paired** difference over seeds (ours − baseline), whose standard error is sd/√n of the per-seed differences.\n", c.Seeds, c.Seed)
	b.WriteString("- Shared across seeds: the tokenizer, the data split, the teacher (one training run), the importance scores and the importance-pruned checkpoints. The verdicts are therefore about students of this one teacher; the teacher's own seed-to-seed spread is not measured.\n")
	fmt.Fprintf(&b, "- Verdict rule: %s.", VerdictRule)
	if c.Seeds == 3 {
		// P(|T| < 2) for Student's t with 2 degrees of freedom is 2/√6.
		b.WriteString(" With 3 seeds, 2 standard errors of a paired difference is a loose bar (82% two-sided confidence under a t distribution with 2 degrees of freedom; 95% would need 4.3), so the difference's size in standard errors is shown for a stricter reading.")
	}
	b.WriteString("\n")
	b.WriteString("- Width vs depth, two ways: the depth-pruned student keeps the same fraction of the teacher's layers (and the whole embedding). *Equal non-embedding parameters* (the papers' own count) pits it against the Minitron width student; *equal total parameters* (the second paper's protocol, Llama-3.1-Minitron-4B Width vs Depth, both 4.5B) against a width student pruned by the same recipe to the depth student's total.\n")
	b.WriteString("- Distillation-loss ablation (first student size): logits-only forward KL (the Minitron recipe) against KL + CE (equal weights) and KL + the intermediate-state cosine loss on the normalised residual stream at every quarter of the depth, through one shared learned projection, weighted dynamically (the first paper's L_is).\n")
	fmt.Fprintf(&b, "- Budget trades (to fit about half an hour on two cores with %d seeds of %d trained arms): the teacher trains on %s tokens and each student run on %s (the previous single-seed protocol: 1.02M and 128K, with a 4-layer teacher), the many-tokens baseline gets %d× (before: 6×), held-out losses are measured on %d tokens per corpus (before: 16000), the next-line tasks have %d items with %d context lines (before: 300 and 6) and are scored on seed 1 only; the teacher, the importance scores and the pruned checkpoints are computed once; the pruned checkpoints before retraining are evaluated once (seed 1 for random pruning).\n\n",
		c.Seeds, trainedArms(r.Models), fmtTokens(c.TeacherTokens), fmtTokens(c.StudentTokens), c.LongMultiple, c.EvalTokens, c.MCItems, c.MCContext)

	b.WriteString("## Results\n\n")
	b.WriteString(Table(r.Models))
	b.WriteString("\nLoss is the mean negative log-likelihood per token in nats (lower is better), mean ± sample standard deviation over the arm's seeds; accuracy is lm-eval's `acc_norm` (log-likelihood per character of the ending, HellaSwag's headline metric) of seed 1 (the tasks' standard error over items, about ±5 points, dwarfs the spread between seeds, so later seeds are scored on the losses only); per-model `acc`, `acc_norm` and their standard errors over the items are in results.json. Training tokens of a pruned student are its retraining tokens; its teacher saw " + fmtTokens(c.TeacherTokens) + " more.\n\n")
	if st := SeedTable(r.Models); st != "" {
		b.WriteString("Go held-out loss of every seeded run:\n\n" + st + "\n")
	}

	b.WriteString("## The papers' claims at this scale\n\n")
	b.WriteString("Each claim is decided on the held-out Go loss (the main corpus) by the rule above; the Opticks loss gets the same rule and is reported beside it, and the Go next-line accuracy (whose item standard error, about ±3 points, is far larger than these loss differences) is shown for reference.\n\n")
	b.WriteString(ClaimsTable(r.Claims))
	n := CountVerdicts(r.Claims)
	fmt.Fprintf(&b, "\n%d claim checks: %d held, %d not held, %d inconclusive.\n\n", len(r.Claims), n[Held], n[NotHeld], n[Inconclusive])
	if note := depthNote(r.Models); note != "" {
		b.WriteString(note + "\n\n")
	}
	if notes := ClaimNotes(r.Models, r.Claims); len(notes) > 0 {
		fmt.Fprintf(&b, "Where the claims that did not hold come from, as far as the data shows (held-out Go loss of the pruned checkpoints before retraining, seed 1 for random pruning, against the arms' means after %s tokens of retraining):\n\n", fmtTokens(c.StudentTokens))
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
		b.WriteString("\n")
	}

	if len(plots) > 0 {
		b.WriteString("## Plots\n\n")
		b.WriteString("Loss curves and accuracies show seed 1 of each arm.\n\n")
		for _, pl := range plots {
			fmt.Fprintf(&b, "![%s](plots/%s)\n\n", strings.TrimSuffix(pl, ".png"), pl)
		}
	}

	b.WriteString("## Recipe\n\n")
	fmt.Fprintf(&b, "- Teacher and from-scratch baselines: CE, AdamW (weight decay 0.01), peak LR %g, 5%% warmup, cosine to LR/10.\n", c.TeacherLR)
	fmt.Fprintf(&b, "- Pruned students (KD or CE retraining): peak LR %g, same schedule; KD is forward KL(teacher‖student) on the logits only, τ = 1, no CE term (the papers' best), except in the ablation arms.\n", c.StudentLR)
	fmt.Fprintf(&b, "- Importance: %d calibration sequences of %d Go training tokens; heads, neurons and embedding channels by activation (batch L2, sequence mean); layers by drop-one LM loss (depth baseline).\n", c.CalibSamples, c.SeqLen)
	b.WriteString("- Width pruning: the papers' recipe (layers and heads kept; MLP cut first to 2/3, then embedding channels), aimed at the stated fraction of non-embedding parameters, or at the depth student's total for the equal-total arm. Depth pruning: the same fraction of layers kept, the least important by loss dropped. Random: the width shape with random channels/neurons kept (drawn per seed).\n\n")

	b.WriteString("## Stages\n\n| Stage | Seconds | Cached | Device |\n|---|---:|---|---|\n")
	for _, s := range r.Stages {
		dev := s.Device
		if s.GPU != "" {
			dev += ", " + s.GPU
		}
		if s.BLASCore != "" {
			dev += ", OpenBLAS " + s.BLASCore
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s |\n", s.Name, s.Seconds, agree(s.Skipped), dev)
	}
	return b.String()
}

// otherCores lists the OpenBLAS kernel sets of cached stages that differ
// from this invocation's.
func otherCores(r *Result) []string {
	var out []string
	seen := map[string]bool{r.BLASCore: true}
	for _, s := range r.Stages {
		if s.BLASCore != "" && !seen[s.BLASCore] {
			seen[s.BLASCore] = true
			out = append(out, s.BLASCore)
		}
	}
	return out
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

// depthNote gives the shapes behind the two width-vs-depth comparisons:
// the depth-pruned student keeps the teacher's hidden size and so its
// whole embedding, so at equal non-embedding parameters it is the larger
// model in all.
func depthNote(entries []*Entry) string {
	first := map[string]*Entry{}
	var students []string
	for _, e := range entries {
		if e.Seed > 1 || e.Student == "" {
			continue
		}
		k := armKey(e.Student, e.Kind)
		if first[k] == nil {
			first[k] = e
		}
		if e.Kind == KindDepth {
			students = append(students, e.Student)
		}
	}
	var parts []string
	for _, s := range students {
		d, w, q := first[armKey(s, KindDepth)], first[armKey(s, KindMinitron)], first[armKey(s, KindEqTotal)]
		if w == nil || q == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: depth %d/%d/%d/%d with %s total (%s non-embedding); width at equal non-embedding %d/%d/%d/%d with %s (%s); width at equal total %d/%d/%d/%d with %s (%s)", s,
			d.Arch.Layers, d.Arch.Hidden, d.Arch.Heads, d.Arch.FFN, model.FormatParams(d.Params), model.FormatParams(d.NonEmbParams),
			w.Arch.Layers, w.Arch.Hidden, w.Arch.Heads, w.Arch.FFN, model.FormatParams(w.Params), model.FormatParams(w.NonEmbParams),
			q.Arch.Layers, q.Arch.Hidden, q.Arch.Heads, q.Arch.FFN, model.FormatParams(q.Params), model.FormatParams(q.NonEmbParams)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "The width-vs-depth shapes (layers/hidden/heads/FFN): " + strings.Join(parts, "; ") + "."
}

func fracList(f []float64) string {
	var s []string
	for _, x := range f {
		s = append(s, studentLabel(x))
	}
	return strings.Join(s, " and ")
}

// plots writes the loss curves (teacher; one figure per student size, seed
// 1 of each arm) and accuracy against parameters, and returns their file
// names.
func (p *pipeline) plots() ([]string, error) {
	var names []string
	groups := map[string][]*eval.Curve{}
	var order []string
	for _, e := range p.res.Models {
		if e.Run == "" || e.Seed > 1 {
			continue
		}
		cv, err := eval.ReadCurve(p.path(e.Run))
		if err != nil {
			return nil, err
		}
		cv.Name = e.Arm
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
			title = fmt.Sprintf("%s students (seed 1), held-out Go", g)
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

// accuracyPlot draws next-line accuracy (each arm's seed 1)
// against non-embedding parameters, one marker style per kind of model.
func (p *pipeline) accuracyPlot(key, label, out string) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("%s next-line task: accuracy vs parameters (seed 1)", label)
	pl.X.Label.Text = "non-embedding parameters (millions)"
	pl.Y.Label.Text = "acc_norm (%)"
	pl.Legend.Top = true // top right, beside the teacher: the x axis is stretched to leave room
	kinds := []string{}
	byKind := map[string]plotter.XYs{}
	for _, es := range armRows(p.res.Models) {
		e := es[0]
		acc := accSummary(es, key)
		if acc.N == 0 {
			continue
		}
		if _, ok := byKind[e.Kind]; !ok {
			kinds = append(kinds, e.Kind)
		}
		byKind[e.Kind] = append(byKind[e.Kind], plotter.XY{X: float64(e.NonEmbParams) / 1e6, Y: acc.Mean})
	}
	sort.SliceStable(kinds, func(i, j int) bool { return kindRank(kinds[i]) < kindRank(kinds[j]) })
	gray := color.RGBA{120, 120, 120, 255}
	styles := map[string]struct {
		c     color.Color
		shape draw.GlyphDrawer
	}{
		KindTeacher:       {color.RGBA{0, 0, 0, 255}, draw.CircleGlyph{}},
		KindMinitron:      {color.RGBA{118, 185, 0, 255}, draw.CircleGlyph{}},
		KindKDCE:          {color.RGBA{118, 185, 0, 255}, draw.RingGlyph{}},
		KindKDIS:          {color.RGBA{60, 120, 0, 255}, draw.RingGlyph{}},
		KindCE:            {color.RGBA{31, 119, 180, 255}, draw.SquareGlyph{}},
		KindDepth:         {color.RGBA{214, 39, 40, 255}, draw.PyramidGlyph{}},
		KindEqTotal:       {color.RGBA{23, 190, 207, 255}, draw.CircleGlyph{}},
		KindRandom:        {color.RGBA{148, 103, 189, 255}, draw.CrossGlyph{}},
		KindScratch:       {color.RGBA{255, 127, 14, 255}, draw.PlusGlyph{}},
		KindScratchLong:   {color.RGBA{140, 86, 75, 255}, draw.RingGlyph{}},
		KindPruned:        {gray, draw.BoxGlyph{}},
		KindPrunedDepth:   {gray, draw.TriangleGlyph{}},
		KindPrunedRandom:  {gray, draw.CrossGlyph{}},
		KindPrunedEqTotal: {gray, draw.RingGlyph{}},
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
	if err := pl.Save(10*vg.Inch, 6*vg.Inch, tmp); err != nil {
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
	for i, x := range []string{KindTeacher, KindMinitron, KindKDCE, KindKDIS, KindCE, KindDepth, KindEqTotal, KindRandom, KindScratch, KindScratchLong, KindPruned, KindPrunedDepth, KindPrunedEqTotal, KindPrunedRandom} {
		if k == x {
			return i
		}
	}
	return 99
}
