package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/eval"
	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

func init() { registerEval(newEvalTasksCmd) }

// EvalTasksOptions are the flags of `eval tasks`.
type EvalTasksOptions struct {
	Models    []string
	Names     []string
	Tokenizer string
	Tasks     []string
	PPL       []string
	PPLSeqLen int
	FewShot   []string
	Shots     int
	Limit     int
	Batch     int
	MaxLen    int
	JSON      bool
	Out       string
	Samples   string
	Weights   string
	Device    string
	NoTF32    bool
	BF16      bool
	// Few-shot sampling, summarisation and code settings.
	FewShotSampler string
	FewShotSeed    int64
	RougeStem      bool
	CodeN          int
	Temperature    float64
	TopP           float64
	CodeSeed       int64
	CodeWall       time.Duration
	CodeCPU        time.Duration
	CodeParallel   int
	MaxGenTokens   int
	// Resume is a directory of partial results of generation tasks.
	Resume string
}

func newEvalTasksCmd() *cobra.Command {
	o := &EvalTasksOptions{}
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "lm-eval style benchmark tasks (hellaswag, winogrande, arc, mmlu, gsm8k, xlsum, humaneval, mbpp), models side by side",
		Long: `Score one or more checkpoints on benchmark tasks read from their original dataset files,
with the prompts, few-shot layout and metrics of lm-evaluation-harness:

  hellaswag      jsonl (activity_label, ctx_a, ctx_b, endings, label)       acc, acc_norm
  winogrande     jsonl (sentence with _, option1, option2, answer)          acc (partial scoring)
  arc_easy       jsonl (AI2 question.stem/choices or HF question/choices)   acc, acc_norm
  arc_challenge  same as arc_easy
  mmlu           MMLU's data directory (test/<subject>_test.csv, dev/...)   acc (5-shot from dev,
                 or one <subject>_test.csv                                   size-weighted mean)
  gsm8k          jsonl (question, answer ending "#### N"), 5-shot from a     exact match, strict
                 train.jsonl beside it (else the file itself)                and flexible extraction
  xlsum          XL-Sum jsonl (id, url, title, summary, text); prompt        ROUGE-1/2/L F1 ×100
                 "{text}\nShort summary:", greedy until a newline, ≤ 128      (--rouge-stem: Porter)
                 tokens (lm-eval's XSum-style task)
  humaneval      HumanEval jsonl (task_id, prompt, canonical_solution,       pass@1 (pass@10, @100
                 test, entry_point); the prompt is continued, cut at          with --code-samples)
                 \nclass \ndef \n# \nif \nprint, ≤ 1024 tokens
  mbpp           MBPP jsonl (task_id, text, code, test_list); lm-eval's       pass@1 (…)
                 prompt, 3-shot from lm-eval's fixed examples (MBPP's
                 prompt split, or --fewshot), until [DONE], ≤ 256 tokens

Few-shot examples (--shots) come from the train split beside the task file (ARC-*-Train.jsonl,
*_train.jsonl, train.jsonl, winogrande's train_xl.jsonl), else --fewshot NAME=PATH, else the
file itself; they are drawn as lm-eval draws them (--fewshot-sampler default: one
random.Random(1234) per task, sampling in item order, the item itself excluded when the pool is
the evaluated file); mmlu and mbpp use lm-eval's first_n. --fewshot-sampler first_n takes the
first K for every task.
Code completions run in a sandbox (see 'minitron eval code --help'): greedy by default
(pass@1); --code-samples N --temperature T samples N per problem for pass@k.
Generation tasks (gsm8k, xlsum, humaneval, mbpp) can be resumed: with --resume DIR each
model's finished items are appended to DIR/<name>.<task>.partial.jsonl and skipped by the
next run with the same settings.

Multiple-choice items run their shared context once (KV cache) and score each choice after it.
Several --model flags give one table, the first model being the reference for the Δ columns.
--out FILE.md writes the markdown report and FILE.json beside it.
--device cuda runs every model on GPU 0 (eval.DeviceLM): a multiple-choice item's context
runs once into a device KV cache and its choices after it in one padded pass (other requests
are packed several to a pass, --batch rows, default sized to memory), and generation decodes
one token a step over the cache; needs the CUDA build. --bf16 keeps the weight matrices on the GPU in bf16 only (half
their f32 memory; bf16 products), e.g. to fit a 15B teacher.`,
		Example: `  minitron eval tasks --model ./Minitron-4B --task hellaswag=hellaswag_val.jsonl --limit 200
  minitron eval tasks --model runs/teacher --model runs/student \
      --task arc_easy=ARC-Easy-Test.jsonl --task mmlu=mmlu/data --task gsm8k=gsm8k/test.jsonl \
      --ppl opticks=$(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt --limit 50 --out report.md
  bin/minitron-cuda eval tasks --model ./Minitron-4B --task hellaswag=hellaswag_val.jsonl --device cuda`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvalTasks(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Models, "model", nil, "checkpoint directory (repeat to compare models; required)")
	f.StringArrayVar(&o.Names, "name", nil, "label of each --model in tables (default: directory name)")
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer file or directory (default: each model's own)")
	f.StringArrayVar(&o.Tasks, "task", nil, "NAME=PATH of a task file (repeatable; required)")
	f.StringArrayVar(&o.PPL, "ppl", nil, "NAME=FILE: also report token loss, word perplexity and bits per byte of a text file")
	f.IntVar(&o.PPLSeqLen, "ppl-seq-len", 0, "window of --ppl (default: the model's window, at most 1024)")
	f.StringArrayVar(&o.FewShot, "fewshot", nil, "NAME=PATH of a task's few-shot examples (default: see above)")
	f.IntVar(&o.Shots, "shots", -1, "few-shot examples per prompt (default: the task's: mmlu 5, gsm8k 5, others 0)")
	f.IntVar(&o.Limit, "limit", 0, "evaluate only the first N items of each task (per subject for mmlu)")
	f.IntVar(&o.Batch, "batch", 0, "contexts scored at once (CPU: default 1, run concurrently on resident weights, helps only with idle cores; cuda: sequences per device pass, default sized to memory)")
	f.IntVar(&o.MaxLen, "max-length", 0, "context window in tokens (default: max_position_embeddings)")
	f.BoolVar(&o.JSON, "json", false, "print the report as JSON instead of markdown")
	f.StringVar(&o.Out, "out", "", "write the markdown report here and the JSON report beside it (missing directories are created)")
	f.StringVar(&o.Samples, "samples", "", "write every item's outcome (log-likelihoods, predictions, generations) to this JSONL file")
	f.StringVar(&o.Weights, "weights", "auto", "weight mode: auto, resident or streaming")
	f.StringVar(&o.Device, "device", "cpu", deviceHelp)
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	f.BoolVar(&o.BF16, "bf16", false, bf16Help)
	f.StringVar(&o.FewShotSampler, "fewshot-sampler", "", "few-shot sampler: default (lm-eval's seeded random draw) or first_n (default: the task's lm-eval setting)")
	f.Int64Var(&o.FewShotSeed, "fewshot-seed", 1234, "seed of the default few-shot sampler (lm-eval's fewshot_random_seed)")
	f.BoolVar(&o.RougeStem, "rouge-stem", false, "xlsum: Porter-stem tokens before ROUGE (rouge-score's use_stemmer)")
	f.IntVar(&o.CodeN, "code-samples", 1, "humaneval/mbpp: completions per problem (pass@k for k = 1, 10, 100 up to this)")
	f.Float64Var(&o.Temperature, "temperature", 0, "humaneval/mbpp: sampling temperature (0: greedy)")
	f.Float64Var(&o.TopP, "top-p", 0.95, "humaneval/mbpp: nucleus sampling with temperature > 0 (the Codex paper's 0.95)")
	f.Int64Var(&o.CodeSeed, "code-seed", 0, "humaneval/mbpp: seed of the sampler")
	f.DurationVar(&o.CodeWall, "code-wall", eval.DefaultLimits.Wall, "humaneval/mbpp: wall-clock limit per executed sample")
	f.DurationVar(&o.CodeCPU, "code-cpu", eval.DefaultLimits.CPU, "humaneval/mbpp: CPU-time limit per executed sample")
	f.IntVar(&o.MaxGenTokens, "max-gen-tokens", 0, "cap of generated tokens per item of generation tasks (default: gsm8k 256, xlsum 128, humaneval 1024, mbpp 256)")
	f.IntVar(&o.CodeParallel, "code-parallel", runtime.NumCPU(), "humaneval/mbpp: samples executed at once")
	f.StringVar(&o.Resume, "resume", "", "directory of partial results of generation tasks: finished items are kept there and skipped when run again")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

// taskOptions turns the flags into the library's options for one task.
func (o *EvalTasksOptions) taskOptions(fewshotPath string) (eval.TaskOptions, error) {
	if o.CodeN < 1 {
		return eval.TaskOptions{}, fmt.Errorf("--code-samples must be at least 1, got %d", o.CodeN)
	}
	if o.Temperature < 0 || o.TopP < 0 || o.TopP > 1 {
		return eval.TaskOptions{}, fmt.Errorf("--temperature must be ≥ 0 and --top-p in [0, 1]")
	}
	if o.CodeN > 1 && o.Temperature == 0 {
		return eval.TaskOptions{}, fmt.Errorf("--code-samples %d with --temperature 0 repeats one greedy completion; give a --temperature (e.g. 0.8) for pass@k", o.CodeN)
	}
	if o.CodeWall <= 0 || o.CodeCPU <= 0 || o.CodeParallel <= 0 {
		return eval.TaskOptions{}, fmt.Errorf("--code-wall, --code-cpu and --code-parallel must be positive")
	}
	seed := o.FewShotSeed
	if seed == 0 {
		return eval.TaskOptions{}, fmt.Errorf("--fewshot-seed 0 is reserved; lm-eval's default is 1234")
	}
	topP := o.TopP
	if o.Temperature == 0 {
		topP = 0
	}
	return eval.TaskOptions{Shots: o.Shots, Limit: o.Limit, FewShotPath: fewshotPath,
		FewShotSampler: o.FewShotSampler, FewShotSeed: seed, RougeStem: o.RougeStem, MaxGenTokens: o.MaxGenTokens,
		Code: eval.CodeRun{N: o.CodeN, Temperature: o.Temperature, TopP: topP, Seed: o.CodeSeed,
			Limits: eval.Limits{Wall: o.CodeWall, CPU: o.CodeCPU, Parallel: o.CodeParallel}}}, nil
}

// partialPath is where --resume keeps a model's partial results of a task.
func partialPath(dir, model, task string) string {
	clean := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, model)
	return filepath.Join(dir, clean+"."+task+".partial.jsonl")
}

// parseNamed splits "NAME=PATH" flags.
func parseNamed(flag string, specs []string) ([][2]string, error) {
	var out [][2]string
	for _, s := range specs {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--%s %q: want NAME=PATH", flag, s)
		}
		out = append(out, [2]string{strings.TrimSpace(name), path})
	}
	return out, nil
}

// loadEvalModel opens a checkpoint and its tokenizer with clear errors.
func loadEvalModel(dir, tokPath, weights string) (*model.Model, data.Tokenizer, error) {
	if tokPath == "" {
		tokPath = dir
		if !fileExistsAny(filepath.Join(dir, "tokenizer.json"), filepath.Join(dir, "tokenizer.model")) {
			return nil, nil, fmt.Errorf("model %s has no tokenizer (tokenizer.json or tokenizer.model); copy one in or pass --tokenizer", dir)
		}
	}
	tok, err := data.LoadTokenizer(tokPath)
	if err != nil {
		return nil, nil, err
	}
	m, err := loadModel(dir, weights)
	if err != nil {
		return nil, nil, err
	}
	if tok.VocabSize() > m.Cfg.VocabSize {
		m.Close()
		return nil, nil, fmt.Errorf("tokenizer %s has %d tokens but model %s only %d embeddings (wrong tokenizer?)", tokPath, tok.VocabSize(), dir, m.Cfg.VocabSize)
	}
	return m, tok, nil
}

func fileExistsAny(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func runEvalTasks(o *EvalTasksOptions, stdout, stderr io.Writer) error {
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if err := checkBF16(o.BF16, dev); err != nil {
		return err
	}
	if len(o.Names) > 0 && len(o.Names) != len(o.Models) {
		return fmt.Errorf("--name given %d times for %d --model flags", len(o.Names), len(o.Models))
	}
	if len(o.Tasks) == 0 && len(o.PPL) == 0 {
		return fmt.Errorf("nothing to evaluate: give --task NAME=PATH (and/or --ppl NAME=FILE)")
	}
	// Output paths are made and checked now, not after the scoring.
	for _, out := range []struct{ flag, path string }{{"--out", o.Out}, {"--out", reportJSONPath(o.Out)}, {"--samples", o.Samples}} {
		if out.path != "" {
			if err := atomicfile.Prepare(out.path); err != nil {
				return fmt.Errorf("%s: %w", out.flag, err)
			}
		}
	}
	specs, err := parseNamed("task", o.Tasks)
	if err != nil {
		return err
	}
	pplSpecs, err := parseNamed("ppl", o.PPL)
	if err != nil {
		return err
	}
	pplTexts := make([]string, len(pplSpecs))
	for i, p := range pplSpecs {
		b, err := os.ReadFile(p[1])
		if err != nil {
			return fmt.Errorf("--ppl %s: %w", p[0], err)
		}
		pplTexts[i] = string(b)
	}
	fs, err := parseNamed("fewshot", o.FewShot)
	if err != nil {
		return err
	}
	fewshot := map[string]string{}
	for _, f := range fs {
		fewshot[f[0]] = f[1]
	}
	// Read every task file first, so a bad file fails before any model runs.
	var tasks []*eval.Task
	for _, s := range specs {
		to, err := o.taskOptions(fewshot[s[0]])
		if err != nil {
			return err
		}
		t, err := eval.LoadTask(s[0], s[1], to)
		if err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	if o.Resume != "" {
		if err := os.MkdirAll(o.Resume, 0o755); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
	}
	rep := &eval.Report{Limit: o.Limit}
	for i, dir := range o.Models {
		m, tok, err := loadEvalModel(dir, o.Tokenizer, deviceWeights(o.Weights, dev))
		if err != nil {
			return err
		}
		mr := &eval.ModelReport{Name: filepath.Base(filepath.Clean(dir)), Dir: dir}
		if len(o.Names) > 0 {
			mr.Name = o.Names[i]
		}
		mr.SetParams(m.Cfg.ParamCounts())
		var eos []int
		if e := tok.EOS(); e >= 0 {
			eos = append(append([]int{}, m.EOS...), e)
		}
		lm, batch, closeLM, err := eval.NewLM(m, eval.LMOptions{Device: dev, NoTF32: o.NoTF32, BF16: o.BF16, MaxLen: o.MaxLen, Workers: o.Batch, Rows: o.Batch, EOS: eos})
		if err != nil {
			m.Close()
			return err
		}
		r := &eval.Runner{LM: lm, Enc: eval.Encoder{Tok: tok}, Batch: batch}
		for i, p := range pplSpecs {
			sl := o.PPLSeqLen
			if sl == 0 {
				sl = min(lm.MaxLength(), 1024)
			}
			bar := newProgressBar("ppl")
			res, err := eval.TextPerplexity(lm, r.Enc, []string{pplTexts[i]}, eval.PPLOptions{SeqLen: sl, Batch: batch, Progress: bar.Update})
			bar.Finish()
			if err != nil {
				closeLM()
				m.Close()
				return fmt.Errorf("--ppl %s on %s: %w", p[0], dir, err)
			}
			res.Source = p[1]
			mr.PPL = append(mr.PPL, eval.NamedPPL{Name: p[0], PPLResult: res})
			fmt.Fprintf(stderr, "%s  %-13s tokens=%d token_loss %.4f bits/byte %.4f\n", mr.Name, p[0], res.Tokens, res.TokenLoss, res.BitsPerByte)
		}
		for _, t := range tasks {
			bar := newProgressBar(t.Name)
			r.Progress = bar.Update
			r.Partial = ""
			if o.Resume != "" && t.Output != eval.MultipleChoice {
				r.Partial = partialPath(o.Resume, mr.Name, t.Name)
				// Items are reused only for the same checkpoint, tokenizer,
				// device and window.
				r.PartialKey = fmt.Sprintf("%s|%s|%s|%d|bf16=%v|tf32=%v", dir, o.Tokenizer, dev, o.MaxLen, o.BF16, !o.NoTF32)
			}
			res, err := r.Run(t)
			bar.Finish()
			if err != nil {
				closeLM()
				m.Close()
				return fmt.Errorf("%s on %s: %w", t.Name, dir, err)
			}
			mr.Tasks = append(mr.Tasks, res)
			if len(res.Sandbox) > 0 && i == 0 {
				fmt.Fprintf(stderr, "%s sandbox:\n  %s\n", t.Name, strings.Join(res.Sandbox, "\n  "))
			}
			for _, x := range res.Metrics {
				fmt.Fprintf(stderr, "%s  %-13s n=%-5d %s %.4f\n", mr.Name, t.Name, res.N, x.Name, x.Value)
			}
		}
		closeLM()
		m.Close()
		rep.Models = append(rep.Models, mr)
	}
	md := rep.Markdown()
	js, err := rep.JSON()
	if err != nil {
		return err
	}
	if o.Samples != "" {
		var sb bytes.Buffer
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		for _, mr := range rep.Models {
			for _, t := range mr.Tasks {
				for _, it := range t.Items {
					if err := enc.Encode(struct {
						Model string `json:"model"`
						Task  string `json:"task"`
						eval.MCOutcome
					}{mr.Name, t.Task, it}); err != nil {
						return err
					}
				}
				for _, g := range t.Gens {
					if err := enc.Encode(struct {
						Model string `json:"model"`
						Task  string `json:"task"`
						eval.GenOutcome
					}{mr.Name, t.Task, g}); err != nil {
						return err
					}
				}
			}
		}
		if err := atomicfile.WriteFile(o.Samples, sb.Bytes(), nil); err != nil {
			return err
		}
	}
	if o.Out != "" {
		if err := atomicfile.WriteFile(o.Out, []byte("# minitron eval report\n\n"+md), nil); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(reportJSONPath(o.Out), js, nil); err != nil {
			return err
		}
	}
	if o.JSON {
		_, err = stdout.Write(js)
		return err
	}
	_, err = io.WriteString(stdout, md)
	return err
}

// reportJSONPath is where the JSON report beside --out FILE.md goes ("" for "").
func reportJSONPath(out string) string {
	if out == "" {
		return ""
	}
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".json"
}
