package prune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
)

// Methods of choosing what to keep.
const (
	MethodImportance = "importance" // activation scores from a scores file (the Minitron method)
	MethodRandom     = "random"     // random scores (baseline)
	MethodMagnitude  = "magnitude"  // weight-norm scores (baseline)
)

// Options configure Run. Exactly one of Target (any non-zero field),
// Preset and Params sets the shape.
type Options struct {
	ModelDir   string
	ScoresPath string // required for MethodImportance
	OutDir     string

	Target         Target
	Preset         string
	Params         int64
	MinFFNFraction float64 // --params recipe; 0 = DefaultMinFFNFraction

	HeadMode      HeadMode
	LayerMetric   LayerMetric
	DropLayers    []int
	ResidualHeads bool
	RescaleNorms  bool

	Method string // MethodImportance (default), MethodRandom, MethodMagnitude
	Seed   uint64 // MethodRandom's seed

	DType      model.DType // empty: the teacher's
	ShardBytes int64       // 0: one file

	// Eval: held-out loss of teacher and student. EvalData is a dataset
	// prefix (its _val split is used); empty means the scores file's data,
	// and is skipped with a note (Report.EvalSkipped) when that data has no
	// _val split or is not on this machine; "none" skips the evaluation.
	EvalData    string
	EvalSamples int // default 16
	EvalSeqLen  int // default min(scores' seq len, 512), or 256
	EvalSeed    uint64
	// TeacherLoss, when positive, is the teacher's loss on these eval
	// samples from an earlier run (search reuses it across candidates).
	TeacherLoss float64
	Weights     model.WeightMode

	DryRun bool
	Log    io.Writer // progress lines; nil = silent
}

// Shape is a full architecture description for reports.
type Shape struct {
	Target
	HeadDim int               `json:"head_dim"`
	Params  model.ParamCounts `json:"params"`
}

// EvalResult is the held-out loss comparison.
type EvalResult struct {
	Data        string  `json:"data"`
	Samples     int     `json:"samples"`
	SeqLen      int     `json:"seq_len"`
	Seed        uint64  `json:"seed"`
	TeacherLoss float64 `json:"teacher_loss"`
	StudentLoss float64 `json:"student_loss"`
	// StudentPerSample are the student's mean NLLs per held-out sample
	// (what `minitron eval nll --ids` prints as mean_nll for that sample).
	StudentPerSample []float64 `json:"student_per_sample"`
}

// Report describes a pruning run; it is written as prune_report.json and
// prune_report.txt into the output directory.
type Report struct {
	Teacher       string               `json:"teacher"`
	Out           string               `json:"out,omitempty"`
	Method        string               `json:"method"`
	Scores        string               `json:"scores,omitempty"`
	Model         *importance.Identity `json:"model_identity,omitempty"`
	Aggregation   string               `json:"aggregation,omitempty"`
	HeadMode      HeadMode             `json:"head_mode"`
	LayerMetric   string               `json:"layer_metric,omitempty"`
	ResidualHeads bool                 `json:"residual_heads"`
	RescaleNorms  bool                 `json:"rescale_norms"`
	DType         model.DType          `json:"dtype,omitempty"`
	TeacherShape  Shape                `json:"teacher_shape"`
	StudentShape  Shape                `json:"student_shape"`
	DroppedLayers []int                `json:"dropped_layers"`
	Kept          *Plan                `json:"kept,omitempty"`
	Eval          *EvalResult          `json:"eval,omitempty"`
	// EvalSkipped says why the default held-out comparison did not run.
	EvalSkipped string  `json:"eval_skipped,omitempty"`
	Seconds     float64 `json:"seconds"`
	// Student is the pruned config (nil on dry runs); not serialised.
	Student *model.Config `json:"-"`
}

func shapeOf(c *model.Config) Shape {
	return Shape{Target: Target{Layers: c.NumLayers, Hidden: c.HiddenSize, Heads: c.NumHeads, KVHeads: c.NumKVHeads, FFN: c.IntermediateSize},
		HeadDim: c.HeadDim, Params: c.ParamCounts()}
}

// ResolveTarget turns the shape options into a checked target.
func ResolveTarget(teacher *model.Config, o Options) (Target, error) {
	// DropLayers alone is a shape: those layers go, every width stays.
	explicit := o.Target != Target{} || len(o.DropLayers) > 0
	n := 0
	for _, set := range []bool{explicit, o.Preset != "", o.Params != 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return Target{}, errors.New("give the student's shape one way: Target (layers, hidden, heads, kv-heads, ffn) and/or DropLayers, Preset or Params")
	}
	t := o.Target
	switch {
	case o.Preset != "":
		var err error
		if t, err = PresetTarget(o.Preset, teacher); err != nil {
			return Target{}, err
		}
	case o.Params != 0:
		var err error
		if t, err = ForParams(teacher, o.Params, o.MinFFNFraction); err != nil {
			return Target{}, err
		}
	}
	if len(o.DropLayers) > 0 && t.Layers == 0 {
		t.Layers = teacher.NumLayers - len(o.DropLayers)
	}
	return t.Resolve(teacher, o.HeadMode)
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Run prunes per o. Everything that can be checked is checked before
// anything is written; the output is built in a temporary directory beside
// OutDir and renamed into place only when complete.
func Run(ctx context.Context, o Options) (*Report, error) {
	start := time.Now()
	if o.Method == "" {
		o.Method = MethodImportance
	}
	if o.HeadMode == "" {
		o.HeadMode = PerGroup
	}
	switch o.Method {
	case MethodImportance, MethodRandom, MethodMagnitude:
	default:
		return nil, fmt.Errorf("unknown Method %q (want importance, random or magnitude)", o.Method)
	}
	teacherCfg, err := model.LoadConfig(filepath.Join(o.ModelDir, model.ConfigFile))
	if err != nil {
		return nil, err
	}
	target, err := ResolveTarget(teacherCfg, o)
	if err != nil {
		return nil, err
	}
	studentCfg := target.Apply(teacherCfg)
	rep := &Report{Teacher: o.ModelDir, Method: o.Method, HeadMode: o.HeadMode, ResidualHeads: o.ResidualHeads, RescaleNorms: o.RescaleNorms,
		TeacherShape: shapeOf(teacherCfg), StudentShape: shapeOf(studentCfg), Student: studentCfg}
	if o.DryRun {
		return rep, nil
	}
	if o.OutDir == "" {
		return nil, errors.New("OutDir is required")
	}
	if err := checkOutDir(o.OutDir); err != nil {
		return nil, err
	}
	if o.Method == MethodImportance && o.ScoresPath == "" {
		return nil, errors.New("ScoresPath is required with Method importance (make a scores file with importance.Run, or minitron importance)")
	}
	teacher, err := model.OpenCheckpoint(o.ModelDir)
	if err != nil {
		return nil, err
	}
	defer teacher.Close()
	var sc *importance.Scores
	switch o.Method {
	case MethodImportance:
		if sc, err = importance.Load(o.ScoresPath); err != nil {
			return nil, err
		}
		id, err := importance.ModelIdentity(teacherCfg, teacher)
		if err != nil {
			return nil, err
		}
		if err := sc.CheckModel(id, o.ModelDir); err != nil {
			return nil, fmt.Errorf("%s: %w", o.ScoresPath, err)
		}
		rep.Scores, rep.Model, rep.Aggregation = o.ScoresPath, &id, sc.Aggregation.String()
	case MethodRandom:
		sc = importance.Random(teacherCfg, o.Seed)
	case MethodMagnitude:
		if sc, err = importance.Magnitude(teacherCfg, teacher); err != nil {
			return nil, err
		}
	}
	metric := o.LayerMetric
	if o.Method != MethodImportance && metric == "" {
		metric = LayerBI // the baseline's own layer scores
	}
	plan, err := SelectPlan(teacherCfg, target, sc, SelectOptions{HeadMode: o.HeadMode, LayerMetric: metric, DropLayers: o.DropLayers, ResidualHeads: o.ResidualHeads})
	if err != nil {
		return nil, err
	}
	if target.Layers < teacherCfg.NumLayers {
		rep.LayerMetric = string(metric)
		if len(o.DropLayers) > 0 {
			rep.LayerMetric = "explicit"
		}
	}
	rep.Kept = plan
	rep.DroppedLayers = []int{}
	for l := 0; l < teacherCfg.NumLayers; l++ {
		if !slices.Contains(plan.Layers, l) {
			rep.DroppedLayers = append(rep.DroppedLayers, l)
		}
	}
	sliced, err := Slice(teacherCfg, teacher, plan, SliceOptions{RescaleNorms: o.RescaleNorms})
	if err != nil {
		return nil, err
	}
	dt := o.DType
	if dt == "" {
		dt = teacherDType(teacher)
	}
	rep.DType = dt
	if dt == model.F32 {
		studentCfg.TorchDType = "float32"
	} else if dt == model.BF16 {
		studentCfg.TorchDType = "bfloat16"
	} else if dt == model.F16 {
		studentCfg.TorchDType = "float16"
	}
	rep.Student = studentCfg

	// Evaluation data is opened before writing so a bad prefix fails early.
	var evalIDs [][]int
	evalData := o.EvalData
	if evalData == "" && sc != nil {
		evalData = sc.Data.Prefix
	}
	var ds *data.IndexedDataset
	name := ""
	if _, idx := data.IndexedPaths(evalData + "_val"); o.EvalData == "" && evalData != "" && !fileExists(idx) {
		// Scores made on a plain Megatron prefix, or on another machine:
		// the default comparison is optional, the pruning is not.
		rep.EvalSkipped = fmt.Sprintf("held-out loss skipped: the scores' data %s has no _val split (%s not found)", evalData, idx)
		o.logf("%s", rep.EvalSkipped)
	} else if evalData != "" && evalData != "none" {
		if ds, name, err = importance.OpenSplit(evalData, "val"); err != nil {
			return nil, err
		}
	}
	if ds != nil {
		n := o.EvalSamples
		if n <= 0 {
			n = 16
		}
		L := o.EvalSeqLen
		if L <= 0 {
			L = 256
			if sc != nil && sc.Data.SeqLen > 0 {
				L = min(sc.Data.SeqLen, 512)
			}
		}
		evalIDs, err = importance.Samples(ds, n, L, o.EvalSeed, teacherCfg.VocabSize)
		ds.Close()
		if err != nil {
			return nil, fmt.Errorf("eval data %s: %w", name, err)
		}
		rep.Eval = &EvalResult{Data: name, Samples: n, SeqLen: L, Seed: o.EvalSeed}
	}

	stage, err := newStaging(o.OutDir)
	if err != nil {
		return nil, err
	}
	defer stage.cleanup()
	tmp := stage.dir
	if StagingHook != nil {
		StagingHook(ctx, tmp)
	}
	o.logf("writing %s (%s → %s params)", o.OutDir, model.FormatParams(rep.TeacherShape.Params.Total), model.FormatParams(rep.StudentShape.Params.Total))
	if err := model.SaveCheckpoint(tmp, studentCfg, sliced, model.SaveOptions{DType: dt, ShardBytes: o.ShardBytes,
		Metadata: map[string]string{"minitron_pruned_from": filepath.Base(filepath.Clean(o.ModelDir))}}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted before %s was complete (nothing written there): %w", o.OutDir, err)
	}
	if _, err := model.CopyTokenizerFiles(o.ModelDir, tmp); err != nil {
		return nil, err
	}
	if rep.Eval != nil {
		o.logf("evaluating teacher and student on %d held-out samples of %d tokens", len(evalIDs), rep.Eval.SeqLen)
		if rep.Eval.TeacherLoss = o.TeacherLoss; rep.Eval.TeacherLoss <= 0 {
			if rep.Eval.TeacherLoss, _, err = evalLoss(ctx, teacherCfg, teacher, evalIDs, o.Weights); err != nil {
				return nil, fmt.Errorf("teacher eval: %w", err)
			}
		}
		// The student is read back from the files just written, so the
		// report predicts what `minitron eval nll` will measure.
		st, err := model.OpenCheckpoint(tmp)
		if err != nil {
			return nil, err
		}
		rep.Eval.StudentLoss, rep.Eval.StudentPerSample, err = evalLoss(ctx, st.Config(), st, evalIDs, o.Weights)
		st.Close()
		if err != nil {
			return nil, fmt.Errorf("student eval: %w", err)
		}
	}
	rep.Out = o.OutDir
	rep.Seconds = time.Since(start).Seconds()
	js, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "prune_report.json"), append(js, '\n'), nil); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "prune_report.txt"), []byte(rep.Text()), nil); err != nil {
		return nil, err
	}
	if err := stage.commit(); err != nil {
		return nil, err
	}
	return rep, nil
}

// staging builds an output directory beside its final place and renames it
// into place when complete, so a failed or interrupted run leaves nothing
// at the output path.
type staging struct {
	out, dir string
	done     bool
}

// StagingHook, when set, is called once the temporary output directory
// exists: for tests of interruptions (Run's and its callers').
var StagingHook func(ctx context.Context, dir string)

// newStaging checks that out is missing or empty and makes the temporary
// directory beside it, removing those a killed run on the same output left.
func newStaging(out string) (*staging, error) {
	if err := checkOutDir(out); err != nil {
		return nil, err
	}
	dir, err := atomicfile.TempDir(out, "tmp")
	if err != nil {
		return nil, err
	}
	return &staging{out: out, dir: dir}, nil
}

// commit renames the finished directory to the output path.
func (s *staging) commit() error {
	if err := os.Remove(s.out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("output directory %s: %w", s.out, err)
	}
	if err := os.Rename(s.dir, s.out); err != nil {
		return err
	}
	s.done = true
	return nil
}

// cleanup removes the temporary directory unless it was committed.
func (s *staging) cleanup() {
	if !s.done {
		os.RemoveAll(s.dir)
	}
}

// checkOutDir accepts a missing or empty directory.
func checkOutDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("output directory %s exists and is not empty: remove it or choose another directory", dir)
	}
	return nil
}

// teacherDType is the dtype most of the teacher's tensors are stored in.
func teacherDType(src model.TensorSource) model.DType {
	count := map[model.DType]int{}
	for _, n := range src.Names() {
		info, _ := src.Info(n)
		count[info.DType] += info.NumElements()
	}
	best, bn := model.F32, -1
	for d, n := range count {
		if n > bn {
			best, bn = d, n
		}
	}
	return best
}

// evalLoss is the mean NLL over ids, one sequence per pass, and the
// per-sequence means.
func evalLoss(ctx context.Context, cfg *model.Config, src model.TensorSource, ids [][]int, w model.WeightMode) (float64, []float64, error) {
	m, err := model.New(cfg, src, model.Options{Weights: w})
	if err != nil {
		return 0, nil, err
	}
	defer m.Close()
	var sum float64
	per := make([]float64, len(ids))
	for i, s := range ids {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		if per[i], err = importance.MeanNLL(m, [][]int{s}, nil); err != nil {
			return 0, nil, err
		}
		sum += per[i]
	}
	return sum / float64(len(ids)), per, nil
}

// Text renders the report for people.
func (r *Report) Text() string {
	var b strings.Builder
	t, s := r.TeacherShape, r.StudentShape
	fmt.Fprintf(&b, "teacher  %s: %s, head_dim %d — %s params (%d; %s embedding)\n", r.Teacher, t.Target, t.HeadDim, model.FormatParams(t.Params.Total), t.Params.Total, model.FormatParams(t.Params.Embedding))
	fmt.Fprintf(&b, "student  %s, head_dim %d — %s params (%d; %s embedding), %.1f%% of the teacher\n", s.Target, s.HeadDim, model.FormatParams(s.Params.Total), s.Params.Total, model.FormatParams(s.Params.Embedding),
		100*float64(s.Params.Total)/float64(t.Params.Total))
	if r.Kept == nil {
		return b.String()
	}
	fmt.Fprintf(&b, "method   %s", r.Method)
	if r.Aggregation != "" {
		fmt.Fprintf(&b, " (%s, scores %s)", r.Aggregation, r.Scores)
	}
	fmt.Fprintf(&b, "; head mode %s; residual heads %v\n", r.HeadMode, r.ResidualHeads)
	if len(r.DroppedLayers) > 0 {
		fmt.Fprintf(&b, "dropped layers %v (by %s)\n", r.DroppedLayers, r.LayerMetric)
	}
	fmt.Fprintf(&b, "kept hidden channels: %d of %d\n", len(r.Kept.Hidden), t.Hidden)
	for _, l := range r.Kept.Layers {
		fmt.Fprintf(&b, "layer %d: groups %v heads %v, %d neurons\n", l, r.Kept.Groups[l], r.Kept.Heads[l], len(r.Kept.FFN[l]))
	}
	if e := r.Eval; e != nil {
		fmt.Fprintf(&b, "held-out loss (%s, %d × %d tokens): teacher %.4f, pruned %.4f\n", e.Data, e.Samples, e.SeqLen, e.TeacherLoss, e.StudentLoss)
	}
	if r.EvalSkipped != "" {
		fmt.Fprintln(&b, r.EvalSkipped)
	}
	return b.String()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
