package reproduce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/prune"
)

// Options configure Run.
type Options struct {
	Out    string // run directory (created)
	Config Config
	// Log receives progress lines (stderr in the CLI); nil is silent.
	Log io.Writer
	// Workers for the compute kernels; 0 = all cores.
	Workers int
	// Device runs the compute stages (training, distillation, importance
	// scoring, evaluation) on the CPU (the zero value) or device.CUDA
	// (GPU 0; a binary built with -tags minitron_cuda). A device's stage
	// keys differ from the CPU's, and a run directory holds one device's
	// run.
	Device device.Kind
	// NoTF32 (cuda only) keeps the device's f32 matrix products in full
	// f32 instead of TF32: slower, closer to the CPU.
	NoTF32 bool
}

// StageRun records one stage of a run.
type StageRun struct {
	Name    string `json:"name"`
	Skipped bool   `json:"skipped"` // cached from an earlier run
	// Seconds the stage took when it ran (in an earlier invocation when
	// it is cached).
	Seconds float64 `json:"seconds"`
	// Device the stage computed on: "cpu", or "cuda (TF32 products)" /
	// "cuda (f32 products)" (from its marker when cached).
	Device string `json:"device"`
	GPU    string `json:"gpu,omitempty"` // its name, for a stage on a GPU
	// BLASCore: the OpenBLAS kernel set of a CPU compute stage (from its
	// marker when cached).
	BLASCore string `json:"blas_core,omitempty"`
}

// Result is what Run did and found.
type Result struct {
	Out     string     `json:"out"`
	Config  Config     `json:"config"`
	Stages  []StageRun `json:"stages"`
	Models  []*Entry   `json:"models"`
	Claims  []Claim    `json:"claims"`
	Seconds float64    `json:"seconds"`
	// Machine describes where the run happened (CPU model and cores),
	// BLASCore the OpenBLAS kernel set in use (OPENBLAS_CORETYPE or the
	// detected one; it changes the float rounding), LoadStart and LoadEnd
	// the machine's load averages (/proc/loadavg) when the run began and
	// ended: other work slows the stages.
	Machine   string `json:"machine"`
	BLASCore  string `json:"blas_core"`
	LoadStart string `json:"load_start,omitempty"`
	LoadEnd   string `json:"load_end,omitempty"`
	// Device the compute stages ran on ("cpu", "cuda (TF32 products)",
	// "cuda (f32 products)") and, on a GPU, its name.
	Device string `json:"device"`
	GPU    string `json:"gpu,omitempty"`
}

// Skipped counts the stages taken from the cache.
func (r *Result) Skipped() int {
	n := 0
	for _, s := range r.Stages {
		if s.Skipped {
			n++
		}
	}
	return n
}

// Kinds of model in the comparison.
const (
	KindTeacher       = "teacher"
	KindPruned        = "width-pruned, no retraining"
	KindPrunedDepth   = "depth-pruned, no retraining"
	KindPrunedRandom  = "random width-pruned, no retraining"
	KindPrunedEqTotal = "width-pruned to the depth student's total, no retraining"
	KindMinitron      = "width-pruned + KD (Minitron)"
	KindCE            = "width-pruned + CE retraining"
	KindDepth         = "depth-pruned + KD"
	// KindEqTotal is the width-pruned student with as many parameters in
	// all as the depth-pruned one (the second paper's protocol), distilled.
	KindEqTotal     = "width-pruned to the depth student's total + KD"
	KindRandom      = "random width-pruned + KD"
	KindScratch     = "from scratch (CE)"
	KindScratchLong = "from scratch (CE), many tokens"
	// The distillation-loss ablation of the Minitron student.
	KindKDCE = "width-pruned + KD + CE"
	KindKDIS = "width-pruned + KD + intermediate-state loss"
)

// Entry is one evaluated model.
type Entry struct {
	Name string `json:"name"`
	// Arm is the model's name without the seed ("w50-kd" for
	// "w50-kd-s2"); Seed is its 1-based seed index (0: not seeded, the
	// teacher and the pruned checkpoints before retraining).
	Arm     string `json:"arm"`
	Seed    int    `json:"seed,omitempty"`
	Kind    string `json:"kind"`
	Student string `json:"student,omitempty"` // "50%" etc.; empty for the teacher
	Dir     string `json:"dir"`               // model directory, relative to the run
	Run     string `json:"run,omitempty"`     // training run dir (metrics.jsonl), relative
	Arch    Arch   `json:"arch"`
	// Params as the Minitron papers count them.
	Params       int64 `json:"params"`
	NonEmbParams int64 `json:"non_embedding_params"`
	// Tokens this model was trained (or retrained) on; the pruned
	// students' teacher saw TeacherTokens more.
	Tokens int64 `json:"tokens"`
	// TrainSeconds is the training stage's wall time (0 if none).
	TrainSeconds float64 `json:"train_seconds,omitempty"`
	Eval         *Eval   `json:"eval,omitempty"`
}

type pipeline struct {
	ctx   context.Context // cancelling it stops a running stage (left unfinished, redone next time)
	o     Options
	c     Config
	dev   devSpec
	gpu   string // GPU 0's name on cuda
	out   string
	res   *Result
	start time.Time
}

func (p *pipeline) logf(format string, a ...any) {
	if p.o.Log != nil {
		fmt.Fprintf(p.o.Log, "[reproduce %6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
	}
}

// stage runs fn as a cached stage in out/rel on the CPU and records it.
func (p *pipeline) stage(rel, key string, fn func(tmp string) error) error {
	return p.runStage(rel, key, stageMarker{}, fn)
}

// computeStage is stage for the stages that run on the run's device (fn
// passes p.dev on); their markers record it.
func (p *pipeline) computeStage(rel, key string, fn func(tmp string) error) error {
	m := stageMarker{BLASCore: kernels.BLASCore()}
	if p.dev.cuda() {
		m = stageMarker{Device: device.CUDA.String(), GPU: p.gpu, NoTF32: p.dev.noTF32}
	}
	return p.runStage(rel, key, m, fn)
}

func (p *pipeline) runStage(rel, key string, m stageMarker, fn func(tmp string) error) error {
	dir := filepath.Join(p.out, rel)
	t0 := time.Now()
	if StageDone(dir, key) {
		p.logf("%s: cached", rel)
		p.res.Stages = append(p.res.Stages, stageRun(rel, dir, true, stageSeconds(dir)))
		return nil
	}
	p.logf("%s: running", rel)
	skipped, err := runStage(rel, dir, key, m, fn)
	if err != nil {
		return err
	}
	sec := time.Since(t0).Seconds()
	p.res.Stages = append(p.res.Stages, stageRun(rel, dir, skipped, sec))
	p.logf("%s: done in %.1fs", rel, sec)
	return nil
}

func (p *pipeline) path(rel ...string) string {
	return filepath.Join(append([]string{p.out}, rel...)...)
}

// Run executes the reproduction: every stage whose result is already in
// o.Out with the same settings is skipped.
func Run(ctx context.Context, o Options) (*Result, error) {
	c := o.Config
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("reproduce config %q: %w", c.Name, err)
	}
	if o.Out == "" {
		return nil, errors.New("reproduce: no output directory")
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	// The device first: a CPU build asked for cuda fails before any work.
	dev, gpu, err := parseDevice(o)
	if err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	if err := checkRunDevice(out, dev); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("reproduce: %w", err)
	}
	p := &pipeline{ctx: ctx, o: o, c: c, dev: dev, gpu: gpu, out: out,
		res: &Result{Out: out, Config: c, Machine: machine(), BLASCore: kernels.BLASCore(), LoadStart: loadAvg(),
			Device: dev.String(), GPU: gpu}, start: time.Now()}
	p.logf("config %s: teacher %s, vocab %d, seq %d × batch %d; teacher %d tokens, students %d tokens each",
		c.Name, c.Teacher, c.Vocab, c.SeqLen, c.Batch, c.TeacherTokens, c.StudentTokens)
	if dev.cuda() {
		p.logf("device: training, importance and evaluation on %s, GPU 0: %s", dev, gpu)
	}

	tokKey, err := p.tokenizer()
	if err != nil {
		return nil, err
	}
	dataKey, err := p.data(tokKey)
	if err != nil {
		return nil, err
	}
	tasksKey, err := p.tasks(dataKey)
	if err != nil {
		return nil, err
	}
	teacherKey, err := p.teacher(dataKey)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scoresKey, err := p.importance(teacherKey)
	if err != nil {
		return nil, err
	}
	entries, err := p.students(ctx, teacherKey, scoresKey)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := p.evaluate(e, dataKey, tasksKey); err != nil {
			return nil, err
		}
	}
	p.res.Models = entries
	p.res.Claims = Claims(entries)
	p.res.Seconds = time.Since(p.start).Seconds()
	p.res.LoadEnd = loadAvg()
	if err := p.report(); err != nil {
		return nil, err
	}
	p.logf("report: %s (%d stages, %d cached)", p.path("REPORT.md"), len(p.res.Stages), p.res.Skipped())
	return p.res, nil
}

// ---- tokenizer ----

func (p *pipeline) goCorpus() (data.CorpusOptions, error) {
	if len(p.c.GoDirs) == 0 {
		return data.CorpusOptions{Builtin: data.BuiltinGoSrc}, nil
	}
	root, err := data.GOROOT()
	if err != nil {
		return data.CorpusOptions{}, err
	}
	var in []string
	for _, d := range p.c.GoDirs {
		in = append(in, filepath.Join(root, "src", filepath.FromSlash(d)))
	}
	return data.CorpusOptions{Inputs: in, Glob: "*.go"}, nil
}

// opticksCorpus cuts the book into ~4 KB pieces so that its held-out
// split has enough documents for validation and the task's distractors.
func opticksCorpus() data.CorpusOptions {
	return data.CorpusOptions{Builtin: data.BuiltinOpticks, MaxDocBytes: 16 << 10, DocBytes: 4 << 10}
}

func (p *pipeline) tokenizer() (string, error) {
	c := p.c
	gc, err := p.goCorpus()
	if err != nil {
		return "", err
	}
	key := tokenizerKey(c)
	return key, p.stage("tokenizer", key, func(tmp string) error {
		// A deterministic sample of the Go files (every k-th, k chosen
		// from the corpus size) plus the whole book.
		files, err := data.CorpusFiles(gc)
		if err != nil {
			return err
		}
		var total int64
		for _, f := range files {
			total += f.Size
		}
		stride := int(max(1, (total+c.TokenizerBytes-1)/c.TokenizerBytes))
		var texts []string
		var got int64
		i := 0
		stop := errors.New("enough")
		_, err = data.WalkDocuments(gc, func(d data.Document) error {
			i++
			if (i-1)%stride != 0 {
				return nil
			}
			texts = append(texts, d.Text)
			got += int64(len(d.Text))
			if got >= c.TokenizerBytes {
				return stop
			}
			return nil
		})
		if err != nil && err != stop {
			return err
		}
		if _, err := data.WalkDocuments(opticksCorpus(), func(d data.Document) error {
			texts = append(texts, d.Text)
			return nil
		}); err != nil {
			return err
		}
		p.logf("tokenizer: training a %d-token byte-level BPE on %d documents (%.1f MB)", c.Vocab, len(texts), float64(got)/1e6)
		bpe, err := data.TrainBPE(func(yield func(string) bool) {
			for _, t := range texts {
				if !yield(t) {
					return
				}
			}
		}, data.TrainOptions{VocabSize: c.Vocab, Workers: p.o.Workers})
		if err != nil {
			return err
		}
		return bpe.WriteDir(tmp, true) // tmp is this stage's own directory
	})
}

// ---- data and tasks ----

func (p *pipeline) data(tokKey string) (string, error) {
	c := p.c
	gc, err := p.goCorpus()
	if err != nil {
		return "", err
	}
	key := dataKey(c, tokKey)
	return key, p.stage("data", key, func(tmp string) error {
		tokDir := p.path("tokenizer")
		tok, err := data.LoadTokenizer(tokDir)
		if err != nil {
			return err
		}
		for _, cp := range []struct {
			name   string
			corpus data.CorpusOptions
			split  float64
		}{{"go", gc, c.TrainSplit}, {"opticks", opticksCorpus(), c.OpticksTrainSplit}} {
			m, err := data.PrepareCorpus(data.PrepareOptions{Corpus: cp.corpus, Tokenizer: tok, TokenizerPath: tokDir,
				Out: filepath.Join(tmp, cp.name), Split: cp.split, Workers: p.o.Workers})
			if err != nil {
				return err
			}
			p.logf("data: %s: %d train documents (%d tokens), %d validation documents (%d tokens)", cp.name,
				m.Splits["train"].Documents, m.Splits["train"].Tokens, m.Splits["val"].Documents, m.Splits["val"].Tokens)
		}
		return nil
	})
}

// tasks builds the next-line multiple-choice tasks from the held-out
// documents of each corpus.
func (p *pipeline) tasks(dKey string) (string, error) {
	c := p.c
	key := tasksKey(c, dKey)
	return key, p.stage("tasks", key, func(tmp string) error {
		tok, err := data.LoadTokenizer(p.path("tokenizer"))
		if err != nil {
			return err
		}
		for _, cp := range Corpora {
			docs, err := decodeDocs(p.path("data", cp.Key+"_val"), tok, cp.Key+"_val")
			if err != nil {
				return err
			}
			items, err := NextLineTask(docs, c.MCItems, c.MCContext, c.MCChoices, int64(c.Seed), cp.Label)
			if err != nil {
				return fmt.Errorf("%s task: %w", cp.Key, err)
			}
			var b strings.Builder
			if err := WriteJSONL(&b, items); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(filepath.Join(tmp, cp.Key+"_nextline.jsonl"), []byte(b.String()), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// decodeDocs turns a held-out dataset back into text (the tokenizer is
// byte-level, so decoding is exact).
func decodeDocs(prefix string, tok data.Tokenizer, name string) ([]Document, error) {
	ds, err := data.OpenIndexed(prefix)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	var docs []Document
	for i := 0; i < ds.NumDocuments(); i++ {
		d, err := ds.Document(i)
		if err != nil {
			return nil, err
		}
		ids := make([]int, len(d))
		for j, t := range d {
			ids[j] = int(t)
		}
		docs = append(docs, Document{Name: fmt.Sprintf("%s#%d", name, i), Text: tok.Decode(ids)})
	}
	return docs, nil
}

// ---- training ----

// trainSpec is one training run (teacher, student retraining, baseline).
type trainSpec struct {
	name      string
	student   string        // checkpoint dir to start from, or ""
	cfg       *model.Config // random init when student == ""
	teacher   string        // teacher dir for KD, or ""
	losses    distill.Losses
	lr        float64
	tokens    int64
	val       bool
	upstreams []string // keys of the stages it reads
	// seed overrides the config's seed (data order, random init) when
	// non-zero: the noise check.
	seed uint64
}

func (p *pipeline) train(rel string, s trainSpec) (string, error) {
	c := p.c
	seed := c.Seed
	if s.seed != 0 {
		seed = s.seed
	}
	key := trainKey(c, p.dev, s)
	return key, p.computeStage(rel, key, func(tmp string) error {
		steps := int((s.tokens + int64(c.SeqLen*c.Batch) - 1) / int64(c.SeqLen*c.Batch))
		train, closeTrain, err := data.OpenBlend(
			[]string{p.path("data", "go_train"), p.path("data", "opticks_train")},
			[]float64{1 - c.OpticksWeight, c.OpticksWeight},
			data.SamplerOptions{SeqLen: c.SeqLen, Seed: seed})
		if err != nil {
			return err
		}
		defer closeTrain()
		dc := distill.Config{
			StudentDir: s.student, StudentConfig: s.cfg, RandomInit: s.student == "",
			TeacherDir: s.teacher,
			Train:      train,
			SeqLen:     c.SeqLen, MicroBatch: c.Batch, GlobalBatch: c.Batch, Steps: steps,
			LR: s.lr, MinLR: s.lr / 10, Warmup: max(1, steps/20), WeightDecay: 0.01,
			Losses: s.losses, Seed: seed, Out: tmp, KeepLast: 1, Workers: p.o.Workers,
			Device: p.dev.kind, NoTF32: p.dev.noTF32,
		}
		if s.val {
			dc.Val = []string{p.path("data", "go_val")}
			dc.ValBatches = c.ValBatches
			dc.ValEvery = max(1, steps/max(1, c.ValEvery))
		}
		every := max(1, steps/5)
		t0 := time.Now()
		dc.OnStep = func(m distill.StepMetrics) {
			if m.Step%every == 0 || m.Step == steps {
				el := time.Since(t0).Seconds()
				p.logf("%s: step %d/%d loss %.4f (%.0f tok/s)", rel, m.Step, steps, m.Loss, float64(m.Step*c.SeqLen*c.Batch)/el)
			}
		}
		res, err := distill.Run(p.ctx, dc)
		if err != nil {
			return err
		}
		if res.Interrupted {
			return fmt.Errorf("interrupted at step %d of %d (run again to redo this stage)", res.Steps, steps)
		}
		// Keep the final weights as an ordinary HF checkpoint: drop the
		// optimizer state (resuming is not needed once a stage is done).
		final := filepath.Join(tmp, "model")
		if err := os.Rename(res.Checkpoint, final); err != nil {
			return err
		}
		os.Remove(filepath.Join(final, "optimizer.bin"))
		os.Remove(filepath.Join(final, "trainer_state.json"))
		os.RemoveAll(filepath.Join(tmp, "checkpoints"))
		if _, err := model.CopyTokenizerFiles(p.path("tokenizer"), final); err != nil {
			return err
		}
		res.Checkpoint = "model"
		return writeJSON(filepath.Join(tmp, "result.json"), struct {
			distill.Result
			Seconds float64 `json:"seconds"`
		}{res, time.Since(t0).Seconds()})
	})
}

func (p *pipeline) teacher(dataKey string) (string, error) {
	s, err := teacherSpec(p.c, dataKey)
	if err != nil {
		return "", err
	}
	return p.train("teacher", s)
}

// teacherSpec is the teacher's training run: CE from random init.
func teacherSpec(c Config, dataKey string) (trainSpec, error) {
	cfg, err := c.teacherConfig()
	if err != nil {
		return trainSpec{}, err
	}
	return trainSpec{name: "teacher", cfg: cfg, losses: distill.Losses{CE: 1},
		lr: c.TeacherLR, tokens: c.TeacherTokens, val: true, upstreams: []string{dataKey}}, nil
}

// ---- importance ----

func (p *pipeline) importance(teacherKey string) (string, error) {
	c := p.c
	key := importanceKey(c, p.dev, teacherKey)
	return key, p.computeStage("importance", key, func(tmp string) error {
		// Width: the paper's best aggregation (batch L2, sequence mean).
		// Depth: drop-one LM loss (on the calibration samples) and Block
		// Importance, for the depth-pruned baseline; no block search.
		_, err := importance.Run(p.ctx, importance.Config{
			ModelDir: p.path("teacher", "model"), Data: p.path("data", "go"), Out: filepath.Join(tmp, "scores.json"),
			Samples: c.CalibSamples, SeqLen: c.SeqLen, Batch: 4, Seed: c.Seed,
			Aggregation: importance.DefaultAggregation, BI: true, Loss: true,
			LossSamples: min(c.CalibSamples, 32), LossOnCalibration: true, BlockK: []int{},
			Device: p.dev.kind, NoTF32: p.dev.noTF32})
		return err
	})
}

// ---- students ----

// widthTarget is the papers' recipe (keep layers and heads; MLP first,
// then embedding channels) aimed at frac of the teacher's non-embedding
// parameters. prune.ForParams budgets total parameters, and the student's
// embedding depends on its hidden size, so iterate to a fixed point.
func widthTarget(t *model.Config, frac float64) (prune.Target, error) {
	want := int64(frac * float64(t.ParamCounts().NonEmbedding))
	emb := t.ParamCounts().Embedding
	var tg prune.Target
	for i := 0; i < 8; i++ {
		next, err := prune.ForParams(t, want+emb, prune.DefaultMinFFNFraction)
		if err != nil {
			return tg, err
		}
		e := next.Apply(t).ParamCounts().Embedding
		if next == tg && e == emb {
			break
		}
		tg, emb = next, e
	}
	return tg, nil
}

// depthTarget is the depth-pruned baseline's layer count: the same
// fraction of the teacher's layers.
func depthTarget(t *model.Config, frac float64) int {
	return max(1, int(math.Round(frac*float64(t.NumLayers))))
}

// eqTotalTarget is the width target (the papers' recipe) with as many
// parameters in all as the teacher cut to layers layers: a depth-pruned
// student keeps the whole embedding, so at equal non-embedding parameters
// it is the larger model; the second paper compares width and depth at
// equal total parameters.
func eqTotalTarget(t *model.Config, layers int) (prune.Target, error) {
	d := *t
	d.NumLayers = layers
	return prune.ForParams(t, d.ParamCounts().Total, prune.DefaultMinFFNFraction)
}

// isPairs are the intermediate-state loss's (student, teacher) layer pairs
// for a width-pruned student (same depth as its teacher): the normalised
// residual stream at every quarter of the depth, the last being the final
// norm's output.
func isPairs(layers int) []distill.LayerPair {
	var out []distill.LayerPair
	for q := 1; q <= 4; q++ {
		k := max(1, int(math.Round(float64(q*layers)/4)))
		if len(out) > 0 && out[len(out)-1].Student == k {
			continue
		}
		out = append(out, distill.LayerPair{Student: k, Teacher: k})
	}
	return out
}

func archOf(c *model.Config) Arch {
	return Arch{Layers: c.NumLayers, Hidden: c.HiddenSize, Heads: c.NumHeads, KVHeads: c.NumKVHeads, FFN: c.IntermediateSize}
}

func (p *pipeline) prune(rel, key string, o prune.Options) error {
	return p.stage(rel, key, func(tmp string) error {
		o.ModelDir = p.path("teacher", "model")
		o.OutDir = filepath.Join(tmp, "model")
		o.EvalData = "none"
		rep, err := prune.Run(p.ctx, o)
		if err != nil {
			return err
		}
		return writeJSON(filepath.Join(tmp, "prune.json"), rep)
	})
}

func studentLabel(frac float64) string { return fmt.Sprintf("%g%%", math.Round(frac*1000)/10) }

// seedName names seed k's run of an arm.
func seedName(arm string, k int) string { return fmt.Sprintf("%s-s%d", arm, k) }

// seedOf is the seed of the k-th (1-based) seeded run.
func (c Config) seedOf(k int) uint64 { return c.Seed + uint64(k-1) }

func (p *pipeline) entry(name, kind, student, dir, run string, tokens int64) (*Entry, error) {
	cfg, err := model.LoadConfig(filepath.Join(p.out, dir, model.ConfigFile))
	if err != nil {
		return nil, err
	}
	pc := cfg.ParamCounts()
	e := &Entry{Name: name, Arm: name, Kind: kind, Student: student, Dir: dir, Run: run, Arch: archOf(cfg),
		Params: pc.Total, NonEmbParams: pc.NonEmbedding, Tokens: tokens}
	if run != "" {
		var r struct {
			Seconds float64 `json:"seconds"`
		}
		if b, err := os.ReadFile(filepath.Join(p.out, run, "result.json")); err == nil {
			json.Unmarshal(b, &r)
			e.TrainSeconds = r.Seconds
		}
	}
	return e, nil
}

func (p *pipeline) students(ctx context.Context, teacherKey, scoresKey string) ([]*Entry, error) {
	c := p.c
	tcfg, err := model.LoadConfig(p.path("teacher", "model", model.ConfigFile))
	if err != nil {
		return nil, err
	}
	teacher, err := p.entry("teacher", KindTeacher, "", "teacher/model", "teacher", c.TeacherTokens)
	if err != nil {
		return nil, err
	}
	entries := []*Entry{teacher}
	scores := p.path("importance", "scores.json")
	tdir := p.path("teacher", "model")
	for si, frac := range c.StudentFractions {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		label := studentLabel(frac)
		w := fmt.Sprintf("w%g", math.Round(frac*100))
		wt, err := widthTarget(tcfg, frac)
		if err != nil {
			return nil, err
		}
		layers := depthTarget(tcfg, frac)
		et, err := eqTotalTarget(tcfg, layers)
		if err != nil {
			return nil, fmt.Errorf("student %s at the depth student's total: %w", label, err)
		}
		p.logf("student %s: width target %s (%d non-embedding params, teacher %d); depth target %d layers; width at the depth student's total %s",
			label, wt, wt.Apply(tcfg).ParamCounts().NonEmbedding, tcfg.ParamCounts().NonEmbedding, layers, et)

		pw, pd, pe, pr1 := "prune/"+w, "prune/"+w+"-depth", "prune/"+w+"-eqtotal", "prune/"+w+"-random"
		kw := pruneWidthKey(scoresKey, wt)
		if err := p.prune(pw, kw, prune.Options{ScoresPath: scores, Target: wt}); err != nil {
			return nil, err
		}
		kd := pruneDepthKey(scoresKey, layers)
		if err := p.prune(pd, kd, prune.Options{ScoresPath: scores, Target: prune.Target{Layers: layers}, LayerMetric: prune.LayerAuto}); err != nil {
			return nil, err
		}
		ke := pruneWidthKey(scoresKey, et)
		if err := p.prune(pe, ke, prune.Options{ScoresPath: scores, Target: et}); err != nil {
			return nil, err
		}
		// Random pruning draws its channels from the seed: one pruned
		// checkpoint per seed.
		in := studentInputs{width: p.path(pw, "model"), depth: p.path(pd, "model"), eqTotal: p.path(pe, "model"),
			teacher: tdir, kw: kw, kd: kd, ke: ke, teacherKey: teacherKey}
		for k := 1; k <= c.Seeds; k++ {
			pr := pr1
			if k > 1 {
				pr = seedName(pr1, k)
			}
			kr := pruneRandomKey(teacherKey, wt, c.seedOf(k))
			if err := p.prune(pr, kr, prune.Options{Method: prune.MethodRandom, Seed: c.seedOf(k), Target: wt}); err != nil {
				return nil, err
			}
			in.random = append(in.random, p.path(pr, "model"))
			in.kr = append(in.kr, kr)
		}
		for _, z := range []struct{ name, kind, dir string }{
			{w + "-pruned", KindPruned, pw},
			{w + "-depth-pruned", KindPrunedDepth, pd},
			{w + "-eqtotal-pruned", KindPrunedEqTotal, pe},
			{w + "-random-pruned", KindPrunedRandom, pr1}, // seed 1's checkpoint
		} {
			e, err := p.entry(z.name, z.kind, label, z.dir+"/model", "", 0)
			if err != nil {
				return nil, err
			}
			entries = append(entries, e)
		}

		scfg, err := model.LoadConfig(p.path(pw, "model", model.ConfigFile))
		if err != nil {
			return nil, err
		}
		in.scratch = scfg
		for _, r := range studentRuns(c, si, w, in) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rel := "train/" + r.name
			if _, err := p.train(rel, r.spec); err != nil {
				return nil, err
			}
			e, err := p.entry(r.name, r.kind, label, rel+"/model", rel, r.spec.tokens)
			if err != nil {
				return nil, err
			}
			e.Arm, e.Seed = r.arm, r.seed
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// studentRun is one training run of a student size: seed (1-based) of
// arm, named name.
type studentRun struct {
	name, arm, kind string
	seed            int
	spec            trainSpec
}

// studentInputs are what a student size's runs start from: the pruned
// checkpoints (random: one per seed), the teacher, the from-scratch
// baselines' config (the width-pruned shape) and the upstream stages'
// keys.
type studentInputs struct {
	width, depth, eqTotal, teacher string
	random                         []string
	scratch                        *model.Config
	kw, kd, ke, teacherKey         string
	kr                             []string
}

// studentRuns lists the training runs of the si-th student size (w names
// it, "w50"), seed by seed: the Minitron student (KD) and its baselines
// (CE retraining, depth pruning at equal non-embedding parameters, width
// pruning at the depth student's total, random pruning, from scratch) and,
// for the first size, the many-tokens baseline and the distillation-loss
// ablation (KD + CE, KD + intermediate-state loss). Every arm runs
// c.Seeds times; seed k of every arm sees the same data order.
func studentRuns(c Config, si int, w string, in studentInputs) []studentRun {
	kl := distill.Losses{KL: 1}
	ce := distill.Losses{CE: 1}
	scfg := *in.scratch
	scfg.TorchDType = "float32"
	var runs []studentRun
	for k := 1; k <= c.Seeds; k++ {
		arms := []studentRun{
			{arm: w + "-kd", kind: KindMinitron, spec: trainSpec{student: in.width, teacher: in.teacher, losses: kl, lr: c.StudentLR, upstreams: []string{in.kw, in.teacherKey}}},
			{arm: w + "-ce", kind: KindCE, spec: trainSpec{student: in.width, losses: ce, lr: c.StudentLR, upstreams: []string{in.kw}}},
			{arm: w + "-depth-kd", kind: KindDepth, spec: trainSpec{student: in.depth, teacher: in.teacher, losses: kl, lr: c.StudentLR, upstreams: []string{in.kd, in.teacherKey}}},
			{arm: w + "-eqtotal-kd", kind: KindEqTotal, spec: trainSpec{student: in.eqTotal, teacher: in.teacher, losses: kl, lr: c.StudentLR, upstreams: []string{in.ke, in.teacherKey}}},
			{arm: w + "-random-kd", kind: KindRandom, spec: trainSpec{student: in.random[k-1], teacher: in.teacher, losses: kl, lr: c.StudentLR, upstreams: []string{in.kr[k-1], in.teacherKey}}},
			{arm: w + "-scratch", kind: KindScratch, spec: trainSpec{cfg: &scfg, losses: ce, lr: c.TeacherLR, upstreams: []string{in.kw}}},
		}
		if si == 0 && c.LongMultiple > 1 {
			arms = append(arms, studentRun{arm: fmt.Sprintf("%s-scratch-%dx", w, c.LongMultiple), kind: KindScratchLong,
				spec: trainSpec{cfg: &scfg, losses: ce, lr: c.TeacherLR, tokens: int64(c.LongMultiple) * c.StudentTokens, upstreams: []string{in.kw}}})
		}
		if si == 0 {
			arms = append(arms,
				studentRun{arm: w + "-kd-ce", kind: KindKDCE, spec: trainSpec{student: in.width, teacher: in.teacher,
					losses: distill.Losses{KL: 1, CE: 1}, lr: c.StudentLR, upstreams: []string{in.kw, in.teacherKey}}},
				studentRun{arm: w + "-kd-is", kind: KindKDIS, spec: trainSpec{student: in.width, teacher: in.teacher,
					losses: distill.Losses{KL: 1, Intermediate: isPairs(in.scratch.NumLayers)}, lr: c.StudentLR, upstreams: []string{in.kw, in.teacherKey}}})
		}
		for i := range arms {
			r := &arms[i]
			r.seed, r.name = k, seedName(r.arm, k)
			r.spec.name = r.arm
			if k > 1 {
				r.spec.seed = c.seedOf(k)
			}
			if r.spec.tokens == 0 {
				r.spec.tokens = c.StudentTokens
			}
			r.spec.val = true
		}
		runs = append(runs, arms...)
	}
	return runs
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), nil)
}
