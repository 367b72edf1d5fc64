package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Output is how a task is scored.
type Output int

const (
	// MultipleChoice tasks compare the log-likelihood of each choice.
	MultipleChoice Output = iota
	// GenerateUntil tasks generate greedily until a stop string and match
	// the extracted answer.
	GenerateUntil
	// Summarize tasks generate greedily until a stop string and score the
	// summary by ROUGE against the reference (xlsum).
	Summarize
	// Code tasks generate N completions per problem, run each with the
	// problem's tests in a sandbox and report pass@k (humaneval, mbpp).
	Code
)

// lm-eval's default delimiters: between a prompt and its target, and
// between few-shot examples.
const (
	targetDelimiter  = " "
	fewshotDelimiter = "\n\n"
)

// Doc is one task item after the task's preprocessing: lm-eval's
// doc_to_text, doc_to_choice and doc_to_target.
type Doc struct {
	// ID locates the item in its file ("path:line").
	ID string
	// Text is the prompt of the item (doc_to_text); unused when
	// MultipleInput.
	Text string
	// Choices are the answer options of a multiple-choice item; with
	// MultipleInput they are the alternative contexts.
	Choices []string
	// Gold is the index of the correct choice.
	Gold int
	// Target is the reference text: a generation task's answer, or with
	// MultipleInput the continuation scored after each context.
	Target string
	// Group names the sub-task (MMLU subject, underscores kept).
	Group string
	// MultipleInput marks winogrande-style partial scoring: each choice is
	// a context and Target the shared continuation.
	MultipleInput bool
	// Problem is a code task's problem (tests, entry point).
	Problem *CodeProblem
}

// Task is a loaded evaluation task: its items, few-shot pools and prompt
// conventions.
type Task struct {
	Name   string
	Output Output
	// Docs are the items evaluated (after Limit).
	Docs []Doc
	// Shots is the number of few-shot examples in every prompt.
	Shots int
	// fewshot pools by Group ("" for tasks without groups).
	fewshot map[string][]Doc
	// fewshotFromDocs: the pool is the evaluated file itself, so an item
	// never serves as its own example.
	fewshotFromDocs bool
	// description returns the text placed before the examples (MMLU's
	// subject line), or "".
	description func(d Doc) string
	// Until are the stop strings of a generation task.
	Until []string
	// MaxGenTokens bounds a generation (lm-eval's default is 256).
	MaxGenTokens int
	// AccNorm reports whether acc_norm is a metric of this task.
	AccNorm bool
	// Sampler is the few-shot sampler used (SamplerRandom or
	// SamplerFirstN).
	Sampler string
	// chosen are the examples SamplerRandom drew for each item, by ID.
	chosen map[string][]Doc
	// RougeStem applies the Porter stemmer before ROUGE (Summarize).
	RougeStem bool
	// CodeRun is how a Code task samples and executes completions.
	CodeRun CodeRun
}

// TaskOptions choose how a task file is read.
type TaskOptions struct {
	// Shots overrides the task's default number of few-shot examples when
	// ≥ 0 (defaults: mmlu 5, gsm8k 5, others 0).
	Shots int
	// Limit keeps only the first Limit items when > 0.
	Limit int
	// FewShotPath is the file (or MMLU dev directory) examples are drawn
	// from; empty means the task's train split beside it (MMLU dev/, see
	// trainSibling for the file names) or else the evaluated file itself.
	FewShotPath string
	// RougeStem: xlsum's ROUGE with Porter stemming (rouge-score's
	// use_stemmer; off by default as in rouge-score).
	RougeStem bool
	// Code sets a code task's sampling and sandbox (zero: pass@1 greedy,
	// DefaultLimits).
	Code CodeRun
	// FewShotSampler picks the few-shot examples: SamplerRandom (lm-eval's
	// default sampler: random.Random(seed).sample per item, in evaluation
	// order, the item itself excluded), SamplerFirstN (the first Shots of
	// the pool), or "" for what lm-eval's task uses (first_n for mmlu and
	// mbpp, random for the others).
	FewShotSampler string
	// FewShotSeed seeds SamplerRandom; 0 means lm-eval's default 1234.
	FewShotSeed int64
	// MaxGenTokens overrides a generation task's length cap when > 0
	// (gsm8k 256, xlsum 128, humaneval 1024, mbpp 256).
	MaxGenTokens int
}

// Few-shot samplers (lm-eval's names).
const (
	SamplerRandom = "default"
	SamplerFirstN = "first_n"
)

// lmEvalFewShotSeed is lm-eval's default fewshot_random_seed.
const lmEvalFewShotSeed = 1234

// TaskNames lists the supported tasks.
func TaskNames() []string {
	return []string{"hellaswag", "winogrande", "arc_easy", "arc_challenge", "mmlu", "gsm8k", "xlsum", "humaneval", "mbpp"}
}

// LoadTask reads the task called name from path in its dataset's original
// format: hellaswag, winogrande, arc_easy, arc_challenge and gsm8k from
// jsonl; mmlu from the per-subject csv files (a data directory holding
// test/ and dev/, or one *_test.csv).
func LoadTask(name, path string, o TaskOptions) (*Task, error) {
	var t *Task
	var err error
	if o.FewShotPath == "" && name != "mmlu" && name != "mbpp" {
		// lm-eval draws these tasks' examples from their train split.
		o.FewShotPath = trainSibling(path, name)
	}
	switch name {
	case "hellaswag":
		t, err = loadJSONLTask(name, path, o, 0, readHellaswag)
		if t != nil {
			t.AccNorm = true
		}
	case "winogrande":
		t, err = loadJSONLTask(name, path, o, 0, readWinogrande)
	case "arc_easy", "arc_challenge":
		t, err = loadJSONLTask(name, path, o, 0, readARC)
		if t != nil {
			t.AccNorm = true
		}
	case "gsm8k":
		t, err = loadJSONLTask(name, path, o, 5, readGSM8K)
		if t != nil {
			t.Output = GenerateUntil
			t.Until = []string{"Question:", "</s>", "<|im_end|>"}
			t.MaxGenTokens = 256
		}
	case "mmlu":
		t, err = loadMMLU(path, o)
	case "xlsum":
		t, err = loadJSONLTask(name, path, o, 0, readXLSum)
		if t != nil {
			t.Output = Summarize
			t.Until = xlsumStops
			t.MaxGenTokens = xlsumMaxTokens
			t.RougeStem = o.RougeStem
		}
	case "humaneval", "mbpp":
		// lm-eval's mbpp is 3-shot from three fixed examples of MBPP's
		// prompt split unless a few-shot file is given.
		fixed := name == "mbpp" && o.FewShotPath == ""
		lo := o
		if fixed {
			lo.Shots = 0
		}
		defShots := 0
		if name == "mbpp" {
			defShots = 3
		}
		t, err = loadJSONLTask(name, path, lo, defShots, ReadCodeProblems)
		if t != nil {
			t.Output = Code
			t.Until = HumanEvalStops
			t.MaxGenTokens = humanEvalMaxTokens
			t.CodeRun = o.Code
			if name == "mbpp" {
				t.Until = MBPPStops
				t.MaxGenTokens = mbppMaxTokens
			}
			if fixed {
				t.Shots = 3
				if o.Shots >= 0 {
					t.Shots = o.Shots
				}
				t.fewshot[""] = mbppFewShot()
				if n := len(t.fewshot[""]); t.Shots > n {
					return nil, fmt.Errorf("mbpp: %d-shot needs %d examples; lm-eval's prompt split has %d (give FewShotPath for more)", t.Shots, t.Shots, n)
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown task %q (known: %s)", name, strings.Join(TaskNames(), ", "))
	}
	if err != nil {
		return nil, err
	}
	if o.MaxGenTokens > 0 && t.Output != MultipleChoice {
		t.MaxGenTokens = o.MaxGenTokens
	}
	sampler := o.FewShotSampler
	if sampler == "" {
		sampler = SamplerRandom
		if name == "mmlu" || name == "mbpp" {
			sampler = SamplerFirstN
		}
	}
	seed := o.FewShotSeed
	if seed == 0 {
		seed = lmEvalFewShotSeed
	}
	if err := t.drawExamples(sampler, seed); err != nil {
		return nil, err
	}
	return t, nil
}

// drawExamples fixes every item's few-shot examples as lm-eval's
// ContextSampler draws them (lm_eval/api/samplers.py and
// Task.fewshot_context): one random.Random(seed) per task (per MMLU
// subject, each being a task there); for each item in evaluation order it
// samples Shots examples from the pool, or, when the pool is the evaluated
// file, Shots+1 and drops the item itself (and any item equal to it)
// keeping the first Shots.
func (t *Task) drawExamples(sampler string, seed int64) error {
	switch sampler {
	case SamplerFirstN:
		t.Sampler = sampler
		return nil
	case SamplerRandom:
		t.Sampler = sampler
	default:
		return fmt.Errorf("%s: unknown few-shot sampler %q (known: %s, %s)", t.Name, sampler, SamplerRandom, SamplerFirstN)
	}
	if t.Shots <= 0 {
		return nil
	}
	rngs := map[string]*PyRandom{}
	t.chosen = map[string][]Doc{}
	for _, d := range t.Docs {
		pool := t.pool(d)
		r := rngs[d.Group]
		if r == nil {
			r = NewPyRandom(seed)
			rngs[d.Group] = r
		}
		n := t.Shots + boolInt(t.fewshotFromDocs)
		if n > len(pool) {
			return fmt.Errorf("%s: %d-shot sampling draws %d examples from a pool of %d", t.Name, t.Shots, n, len(pool))
		}
		var ex []Doc
		for _, i := range r.Sample(len(pool), n) {
			// lm-eval passes the item to exclude only when the pool is the
			// evaluated split.
			if !(t.fewshotFromDocs && sameDoc(pool[i], d)) && len(ex) < t.Shots {
				ex = append(ex, pool[i])
			}
		}
		t.chosen[d.ID] = ex
	}
	return nil
}

// samplerUsed is the few-shot sampler for reports: none without examples.
func (t *Task) samplerUsed() string {
	if t.Shots <= 0 {
		return ""
	}
	return t.Sampler
}

// sameDoc is lm-eval's "x != doc" negated: the same item, or one with the
// same content (lm-eval compares the documents' fields).
func sameDoc(a, b Doc) bool {
	return a.ID == b.ID || (a.Text == b.Text && a.Target == b.Target && a.Gold == b.Gold &&
		a.MultipleInput == b.MultipleInput && slices.Equal(a.Choices, b.Choices))
}

func (t *Task) pool(d Doc) []Doc {
	if p := t.fewshot[d.Group]; p != nil {
		return p
	}
	return t.fewshot[""]
}

// trainSibling guesses the train split beside a task file, as the
// datasets ship them: the file name with test/val/validation/dev replaced
// by train (ARC-Challenge-Test.jsonl → ARC-Challenge-Train.jsonl,
// hellaswag_val.jsonl → hellaswag_train.jsonl), train.jsonl, and
// winogrande's train_xl.jsonl (lm-eval's winogrande_xl). "" when none.
func trainSibling(path, task string) string {
	dir, base := filepath.Split(path)
	var cands []string
	for _, r := range [][2]string{{"validation", "train"}, {"Validation", "Train"}, {"test", "train"}, {"Test", "Train"}, {"val", "train"}, {"Val", "Train"}, {"dev", "train"}, {"Dev", "Train"}} {
		if strings.Contains(base, r[0]) {
			cands = append(cands, strings.Replace(base, r[0], r[1], 1))
		}
	}
	if task == "winogrande" {
		cands = append(cands, "train_xl.jsonl")
	}
	cands = append(cands, "train.jsonl")
	for _, c := range cands {
		if p := filepath.Join(dir, c); filepath.Clean(p) != filepath.Clean(path) && fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

type docReader func(path string) ([]Doc, error)

func loadJSONLTask(name, path string, o TaskOptions, defShots int, read docReader) (*Task, error) {
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("%s: %s is a directory; %s reads a .jsonl file", name, path, name)
	}
	docs, err := read(path)
	if err != nil {
		return nil, err
	}
	t := &Task{Name: name, Output: MultipleChoice, Shots: defShots}
	if o.Shots >= 0 {
		t.Shots = o.Shots
	}
	t.fewshot = map[string][]Doc{}
	if t.Shots > 0 {
		if o.FewShotPath != "" {
			pool, err := read(o.FewShotPath)
			if err != nil {
				return nil, err
			}
			t.fewshot[""] = pool
		} else {
			t.fewshot[""] = docs
			t.fewshotFromDocs = true
		}
		if n := len(t.fewshot[""]); n < t.Shots+boolInt(t.fewshotFromDocs) {
			return nil, fmt.Errorf("%s: %d-shot needs %d example items, the few-shot pool has %d", name, t.Shots, t.Shots, n-boolInt(t.fewshotFromDocs))
		}
	}
	t.Docs = limitDocs(docs, o.Limit)
	return t, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func limitDocs(d []Doc, limit int) []Doc {
	if limit > 0 && limit < len(d) {
		return d[:limit]
	}
	return d
}

// examples returns the few-shot examples for d: those SamplerRandom drew,
// or lm-eval's first_n sampler over the pool, skipping d itself when the
// pool is the evaluated file.
func (t *Task) examples(d Doc) []Doc {
	if t.Shots <= 0 {
		return nil
	}
	if t.chosen != nil {
		return t.chosen[d.ID]
	}
	pool := t.pool(d)
	out := make([]Doc, 0, t.Shots)
	for _, ex := range pool {
		if len(out) == t.Shots {
			break
		}
		if t.fewshotFromDocs && ex.ID == d.ID {
			continue
		}
		out = append(out, ex)
	}
	return out
}

// exampleText renders a solved example: its prompt, the target delimiter and
// its answer.
func exampleText(ex Doc) string {
	if ex.Problem != nil && ex.Problem.EntryPoint == "" {
		// lm-eval's mbpp: the prompt ends in "[BEGIN]\n", the target is
		// the code and "[DONE]" with no delimiter before it.
		return ex.Text + ex.Target + "\n[DONE]"
	}
	if ex.MultipleInput {
		return ex.Choices[ex.Gold] + targetDelimiter + ex.Target
	}
	if len(ex.Choices) > 0 {
		return ex.Text + targetDelimiter + ex.Choices[ex.Gold]
	}
	return ex.Text + targetDelimiter + ex.Target
}

// prefix is the part of every context before the item's own prompt: the
// description and the few-shot examples, each followed by the few-shot
// delimiter.
func (t *Task) prefix(d Doc) string {
	var b strings.Builder
	if t.description != nil {
		b.WriteString(t.description(d))
	}
	for _, ex := range t.examples(d) {
		b.WriteString(exampleText(ex))
		b.WriteString(fewshotDelimiter)
	}
	return b.String()
}

// Context is the prompt of a generation item or of an ordinary
// multiple-choice item.
func (t *Task) Context(d Doc) string { return t.prefix(d) + d.Text }

// Pair is one log-likelihood request: the log-probability of Continuation
// given Context.
type Pair struct {
	Context, Continuation string
}

// Requests returns one request per choice of a multiple-choice item: the
// shared context with " "+choice, or for winogrande-style items each
// completed context with the shared rest of the sentence.
func (t *Task) Requests(d Doc) []Pair {
	pre := t.prefix(d)
	out := make([]Pair, len(d.Choices))
	for i, c := range d.Choices {
		if d.MultipleInput {
			out[i] = Pair{pre + c, targetDelimiter + d.Target}
		} else {
			out[i] = Pair{pre + d.Text, targetDelimiter + c}
		}
	}
	return out
}

// Groups lists the distinct Group values of the evaluated docs, sorted.
func (t *Task) Groups() []string {
	seen := map[string]bool{}
	var g []string
	for _, d := range t.Docs {
		if !seen[d.Group] {
			seen[d.Group] = true
			g = append(g, d.Group)
		}
	}
	sort.Strings(g)
	return g
}
