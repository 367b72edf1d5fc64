package eval

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
)

// CodeProblem is one HumanEval or MBPP problem: what the program run for a
// completion is made of.
type CodeProblem struct {
	TaskID string
	// Prompt is HumanEval's function signature and docstring, which the
	// completion continues; MBPP's completion is a whole program, so its
	// Prompt is empty here (the model's prompt is built from the text and
	// the tests).
	Prompt string
	// Canonical is the reference solution (HumanEval's canonical_solution,
	// MBPP's code).
	Canonical string
	// Test is the test code: HumanEval's check function, MBPP's setup code
	// and asserts.
	Test string
	// EntryPoint is the function HumanEval's check(…) is called with; empty
	// for MBPP.
	EntryPoint string
}

// Program is what runs for a completion: HumanEval's prompt + completion +
// test + check(entry_point), as the reference harness builds it; MBPP's
// completion followed by its asserts.
func (p *CodeProblem) Program(completion string) string {
	if p.EntryPoint == "" {
		return completion + "\n" + p.Test + "\n"
	}
	return p.Prompt + completion + "\n" + p.Test + "\n" + "check(" + p.EntryPoint + ")\n"
}

// HumanEvalStops are the stop sequences of HumanEval completions (the Codex
// paper's, as lm-eval's humaneval task uses them): a new top-level
// statement ends the function body.
var HumanEvalStops = []string{"\nclass", "\ndef", "\n#", "\nif", "\nprint"}

// MBPPStops end an MBPP completion: lm-eval's mbpp task stops at [DONE].
var MBPPStops = []string{"[DONE]"}

// CodeRun sets how a code task samples and executes completions.
type CodeRun struct {
	// N completions per problem (≤ 1: one). pass@k is reported for every
	// k in 1, 10, 100 up to N.
	N int
	// Temperature 0 is greedy decoding (pass@1; with N > 1 every sample is
	// the same); > 0 samples (the Codex paper: 0.2 for pass@1, 0.8 for
	// pass@100), with TopP (0: off; the Codex paper uses 0.95).
	Temperature, TopP float64
	// Seed seeds the sampler; sample i of item j draws with a seed derived
	// from Seed, j and i, so runs and resumed runs repeat.
	Seed int64
	// Limits confine each executed sample (zero fields: DefaultLimits).
	Limits Limits
}

// CodeOutcome is a problem's executed completions.
type CodeOutcome struct {
	// Completions are the generated (truncated) completions.
	Completions []string `json:"completions"`
	// Results are, per completion, "passed" or why it failed ("failed:
	// AssertionError", "timed out", …).
	Results []string `json:"results"`
	// N completions, Correct of them passed.
	N       int `json:"n"`
	Correct int `json:"correct"`
}

// PassAtK is the unbiased estimator of the Codex paper (Chen et al. 2021):
// 1 − C(n−c, k)/C(n, k), the chance that at least one of k samples drawn
// without replacement from n, c of them correct, passes; computed as the
// product 1 − Π_{i=n−c+1}^{n} (1 − k/i) for numerical stability.
func PassAtK(n, c, k int) float64 {
	if k <= 0 || n <= 0 || k > n {
		return math.NaN()
	}
	if n-c < k {
		return 1
	}
	prod := 1.0
	for i := n - c + 1; i <= n; i++ {
		prod *= 1 - float64(k)/float64(i)
	}
	return 1 - prod
}

// passKs are the k that every outcome's sample count allows, among 1, 10,
// 100 (the reference harness's defaults).
func passKs(gens []GenOutcome) []int {
	minN := math.MaxInt
	for _, o := range gens {
		if o.CodeOutcome != nil {
			minN = min(minN, o.N)
		}
	}
	var ks []int
	for _, k := range []int{1, 10, 100} {
		if k <= minN {
			ks = append(ks, k)
		}
	}
	return ks
}

const humanEvalWhat = "HumanEval jsonl (task_id, prompt, canonical_solution, test, entry_point)"
const mbppWhat = "MBPP jsonl (task_id, text, code, test_list[, test_setup_code])"
const codeWhat = humanEvalWhat + " or " + mbppWhat

// ReadCodeProblems reads HumanEval or MBPP problems (the format is told
// line by line by entry_point or test_list), with their model prompts as
// Docs: HumanEval's prompt as is; MBPP's lm-eval prompt ("You are an
// expert Python programmer, and here is your task: {text} Your code should
// pass these tests:\n\n{tests}\n[BEGIN]\n").
func ReadCodeProblems(path string) ([]Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return scanCodeProblems(f, path)
}

func scanCodeProblems(r io.Reader, path string) ([]Doc, error) {
	var docs []Doc
	seen := map[string]int{}
	err := scanJSONL(r, path, codeWhat, func(line int, obj map[string]json.RawMessage) error {
		var id string
		raw, ok := obj["task_id"]
		if !ok {
			return errAt(path, line, "missing field \"task_id\" (is this a %s file?)", codeWhat)
		}
		// MBPP's task ids are numbers, HumanEval's strings.
		var num json.Number
		if json.Unmarshal(raw, &id) != nil {
			if err := json.Unmarshal(raw, &num); err != nil {
				return errAt(path, line, "task_id %s is neither a string nor a number", raw)
			}
			id = num.String()
		}
		if prev, dup := seen[id]; dup {
			return errAt(path, line, "task_id %q repeats line %d", id, prev)
		}
		seen[id] = line
		p := &CodeProblem{TaskID: id}
		d := Doc{ID: id, Problem: p}
		if _, he := obj["entry_point"]; he {
			for _, f := range []struct {
				k string
				v *string
			}{{"prompt", &p.Prompt}, {"canonical_solution", &p.Canonical}, {"test", &p.Test}, {"entry_point", &p.EntryPoint}} {
				if err := field(obj, f.k, f.v, path, line, humanEvalWhat); err != nil {
					return err
				}
			}
			if strings.TrimSpace(p.EntryPoint) == "" {
				return errAt(path, line, "empty entry_point")
			}
			d.Text = p.Prompt
		} else if _, mb := obj["test_list"]; mb {
			var text, setup string
			var tests []string
			if err := field(obj, "text", &text, path, line, mbppWhat); err != nil {
				return err
			}
			if err := field(obj, "code", &p.Canonical, path, line, mbppWhat); err != nil {
				return err
			}
			if err := field(obj, "test_list", &tests, path, line, mbppWhat); err != nil {
				return err
			}
			if _, ok := obj["test_setup_code"]; ok {
				if err := field(obj, "test_setup_code", &setup, path, line, mbppWhat); err != nil {
					return err
				}
			}
			if len(tests) == 0 {
				return errAt(path, line, "empty test_list")
			}
			p.Test = setup + "\n" + strings.Join(tests, "\n")
			d.Text = "You are an expert Python programmer, and here is your task: " + text +
				" Your code should pass these tests:\n\n" + strings.Join(tests, "\n") + "\n[BEGIN]\n"
		} else {
			return errAt(path, line, "neither entry_point nor test_list (expected %s)", codeWhat)
		}
		d.Target = p.Canonical
		docs = append(docs, d)
		return nil
	})
	return docs, err
}

// CodeSample is one line of the reference harness's samples file.
type CodeSample struct {
	TaskID     string `json:"task_id"`
	Completion string `json:"completion"`
}

const samplesWhat = "samples jsonl (task_id, completion)"

// ReadCodeSamples reads completions produced elsewhere (human-eval's
// samples format), grouped by task id in file order.
func ReadCodeSamples(path string) (map[string][]string, error) {
	out := map[string][]string{}
	err := readJSONL(path, samplesWhat, func(line int, obj map[string]json.RawMessage) error {
		var s CodeSample
		raw, ok := obj["task_id"]
		if !ok {
			return errAt(path, line, "missing field \"task_id\" (is this a %s file?)", samplesWhat)
		}
		var num json.Number
		if json.Unmarshal(raw, &s.TaskID) != nil {
			if err := json.Unmarshal(raw, &num); err != nil {
				return errAt(path, line, "task_id %s is neither a string nor a number", raw)
			}
			s.TaskID = num.String()
		}
		if err := field(obj, "completion", &s.Completion, path, line, samplesWhat); err != nil {
			return err
		}
		out[s.TaskID] = append(out[s.TaskID], s.Completion)
		return nil
	})
	return out, err
}

// CodeScore is the result of scoring completions of code problems.
type CodeScore struct {
	// Problems scored (those with samples).
	Problems int `json:"problems"`
	// PassAtK maps "pass@k" to the mean over problems.
	PassAtK map[string]float64 `json:"pass_at_k"`
	// Ks are the k reported, ascending.
	Ks    []int        `json:"ks"`
	Items []CodeScore1 `json:"items,omitempty"`
	// Enforced lists what the sandbox enforced.
	Enforced []string `json:"sandbox"`
}

// CodeScore1 is one problem's executed samples.
type CodeScore1 struct {
	TaskID string `json:"task_id"`
	CodeOutcome
}

// CodeScoreOptions set ScoreCodeSamples.
type CodeScoreOptions struct {
	Limits Limits
	// Progress, when set, is called as problems finish.
	Progress func(done, total int64)
}

// ScoreCodeSamples runs every sample of samples against its problem in the
// sandbox and reports pass@k for each k in 1, 10, 100 that every problem's
// sample count allows. A sample of an unknown task is an error; problems
// without samples are left out (as the reference harness does only when
// told, it says so in Problems).
func ScoreCodeSamples(problems []Doc, samples map[string][]string, o CodeScoreOptions) (*CodeScore, error) {
	byID := map[string]*CodeProblem{}
	for _, d := range problems {
		byID[d.Problem.TaskID] = d.Problem
	}
	ids := make([]string, 0, len(samples))
	for id := range samples {
		if byID[id] == nil {
			return nil, fmt.Errorf("samples name task_id %q, which is not among the problems", id)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no samples to score")
	}
	// Problem file order, so items print in a stable order.
	order := map[string]int{}
	for i, d := range problems {
		order[d.Problem.TaskID] = i
	}
	sort.Slice(ids, func(a, b int) bool { return order[ids[a]] < order[ids[b]] })
	sb, err := NewSandbox(o.Limits)
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	prog := &progressCounter{fn: o.Progress, total: int64(len(ids))}
	res := &CodeScore{Problems: len(ids), PassAtK: map[string]float64{}, Enforced: sb.Enforced()}
	// Problems run side by side too, so one sample a problem (pass@1) fills
	// the sandbox's parallel slots.
	outs := make([]*CodeOutcome, len(ids))
	errs := make([]error, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(sb.lim.Parallel, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				outs[i], errs[i] = sb.RunProblem(byID[ids[i]], samples[ids[i]])
				mu.Lock()
				prog.add(1)
				mu.Unlock()
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	var gens []GenOutcome
	for i, id := range ids {
		if errs[i] != nil {
			return nil, fmt.Errorf("%s: %w", id, errs[i])
		}
		res.Items = append(res.Items, CodeScore1{TaskID: id, CodeOutcome: *outs[i]})
		gens = append(gens, GenOutcome{ID: id, CodeOutcome: outs[i]})
	}
	res.Ks = passKs(gens)
	for _, k := range res.Ks {
		var s float64
		for _, g := range gens {
			s += PassAtK(g.N, g.Correct, k)
		}
		res.PassAtK[fmt.Sprintf("pass@%d", k)] = s / float64(len(gens))
	}
	return res, nil
}

// mbppPromptSplit is MBPP's prompt split as lm-eval's mbpp task uses it
// for its 3 few-shot examples (task ids 2, 3 and 4, first_n; copied from
// lm_eval/tasks/mbpp/utils.py's list_fewshot_samples).
const mbppPromptSplit = `{"task_id": 2, "text": "Write a function to find the similar elements from the given two tuple lists.", "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) ", "test_list": ["assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)", "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)", "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)"]}
{"task_id": 3, "text": "Write a python function to identify non-prime numbers.", "code": "import math\r\ndef is_not_prime(n):\r\n    result = False\r\n    for i in range(2,int(math.sqrt(n)) + 1):\r\n        if n % i == 0:\r\n            result = True\r\n    return result", "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True", "assert is_not_prime(35) == True"]}
{"task_id": 4, "text": "Write a function to find the largest integers from a given list of numbers using heap queue algorithm.", "code": "import heapq as hq\r\ndef heap_queue_largest(nums,n):\r\n  largest_nums = hq.nlargest(n, nums)\r\n  return largest_nums", "test_list": ["assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65] ", "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75] ", "assert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]"]}
`

// mbppFewShot is the pool of lm-eval's mbpp few-shot examples.
func mbppFewShot() []Doc {
	docs, err := scanCodeProblems(strings.NewReader(mbppPromptSplit), "mbpp prompt split")
	if err != nil {
		panic(err) // a constant of this file
	}
	return docs
}
