package eval

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// scriptLM answers generation requests from a script keyed by the prompt,
// token by token, honouring maxNew and the stop callback as a model would.
type scriptLM struct {
	tok data.Tokenizer
	// answer returns the text generated after prompt; sample is the
	// Decode seed (0 for greedy Generate).
	answer func(prompt string, seed int64) string
	// failAfter > 0 makes the call after that many an error (an
	// interrupted run).
	failAfter, calls int
	maxNewSeen       []int
}

func (s *scriptLM) MaxLength() int { return 4096 }

func (s *scriptLM) Score([]ScoreRequest) ([][]TokenScores, error) {
	return nil, errors.New("scriptLM does not score")
}

func (s *scriptLM) emit(ctx []int, maxNew int, seed int64, each func(gen []int) bool) ([]int, error) {
	s.calls++
	if s.failAfter > 0 && s.calls > s.failAfter {
		return nil, errors.New("interrupted")
	}
	s.maxNewSeen = append(s.maxNewSeen, maxNew)
	want := s.tok.Encode(s.answer(s.tok.Decode(ctx), seed))
	var gen []int
	for _, id := range want {
		if len(gen) == maxNew {
			break
		}
		gen = append(gen, id)
		if !each(gen) {
			break
		}
	}
	return gen, nil
}

func (s *scriptLM) Generate(ctx []int, maxNew int, stop func(gen []int) bool) ([]int, error) {
	return s.emit(ctx, maxNew, 0, func(gen []int) bool { return stop == nil || !stop(gen) })
}

func (s *scriptLM) Decode(prompt []int, opt model.GenerateOptions) (*model.GenerateResult, error) {
	gen, err := s.emit(prompt, opt.MaxNewTokens, opt.Seed, func(gen []int) bool { return opt.OnToken(gen[len(gen)-1]) })
	if err != nil {
		return nil, err
	}
	return &model.GenerateResult{Tokens: gen}, nil
}

func goldenTokenizer(t *testing.T) data.Tokenizer {
	t.Helper()
	tok, err := data.LoadTokenizer(filepath.Join(goldenDir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// xlsumAnswers: the first item's summary verbatim then a second line (cut
// at the newline), nothing for the second, a paraphrase for the third.
func xlsumAnswers(prompt string, _ int64) string {
	switch {
	case strings.Contains(prompt, "energy bills"):
		return " Energy bills will be capped for two years, the government has announced.\nMore text."
	case strings.Contains(prompt, "frog"):
		return ""
	}
	return " Rovers beat their rivals 2-1 in extra time to win the cup."
}

func TestXLSumRun(t *testing.T) {
	tk := mustLoad(t, "xlsum", fixture("xlsum.jsonl"), zeroShot)
	if got := tk.Context(tk.Docs[2]); got != "Rovers came from behind to win the cup final 2-1 after extra time on Saturday, with a late header deciding the match.\nShort summary:" {
		t.Errorf("prompt: %q", got)
	}
	lm := &scriptLM{tok: goldenTokenizer(t), answer: xlsumAnswers}
	r := &Runner{LM: lm, Enc: Encoder{Tok: lm.tok}}
	res, err := r.Run(tk)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	for i, d := range tk.Docs {
		resp := CutAtStop(xlsumAnswers(tk.Context(d), 0), []string{"\n"})
		if res.Gens[i].Response != resp {
			t.Errorf("item %d: response %q, want %q (cut at the newline)", i, res.Gens[i].Response, resp)
		}
		rg := RougeOf(d.Target, resp, false)
		want["rouge1"] += rg.R1.F / 3
		want["rouge2"] += rg.R2.F / 3
		want["rougeL"] += rg.RL.F / 3
	}
	for name, w := range want {
		m, ok := res.Metric(name)
		if !ok || math.Abs(m.Value-w) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, m, w)
		}
	}
	if res.Gens[0].Rouge.RL.F != 1 || res.Gens[1].Rouge.R1.F != 0 {
		t.Errorf("verbatim summary must score 1 and an empty one 0: %+v %+v", res.Gens[0].Rouge, res.Gens[1].Rouge)
	}
	for _, n := range lm.maxNewSeen {
		if n != xlsumMaxTokens {
			t.Errorf("generation capped at %d tokens, want %d", n, xlsumMaxTokens)
		}
	}
	h, _ := headline(res)
	if h.Name != "rougeL" {
		t.Errorf("xlsum's headline is %q, want rougeL", h.Name)
	}
}

// TestCodeRun generates completions for the HumanEval fixture: the
// canonical body followed by a new top-level def (cut at "\ndef") for
// Toy/0 and Toy/2, a wrong body for Toy/3, and for Toy/1 the right one
// only when the sampling seed is even.
func TestCodeRun(t *testing.T) {
	newTestSandbox(t)
	problems := codeFixture(t, "humaneval.jsonl")
	canon := map[string]string{}
	for _, d := range problems {
		canon[d.Problem.Prompt] = d.Problem.Canonical
	}
	answer := func(prompt string, seed int64) string {
		for p, c := range canon {
			if strings.HasSuffix(prompt, p) {
				if strings.Contains(p, "def add") || strings.Contains(p, "def is_palindrome") || (strings.Contains(p, "running_max") && seed%2 == 0) {
					return c + "\n\ndef unrelated():\n    raise SystemExit(1)\n"
				}
				return "    return None\n"
			}
		}
		return "    pass\n"
	}
	tok := goldenTokenizer(t)
	for _, c := range []struct {
		reason string
		run    CodeRun
		want   map[string]float64
	}{
		{"greedy pass@1 (greedy is seed 0 to the script: Toy/1 right)", CodeRun{N: 1, Limits: goodLimits}, map[string]float64{"pass@1": 0.75}},
		{"4 samples at temperature 0.8", CodeRun{N: 4, Temperature: 0.8, Seed: 10, Limits: goodLimits},
			// Toy/1 (item 1): seeds 10+100003+i, i = 0..3, so 2 of 4 right.
			map[string]float64{"pass@1": (1 + 0.5 + 1 + 0) / 4}},
	} {
		tk := mustLoad(t, "humaneval", filepath.Join("testdata", "code", "humaneval.jsonl"), TaskOptions{Shots: -1, Code: c.run})
		lm := &scriptLM{tok: tok, answer: answer}
		r := &Runner{LM: lm, Enc: Encoder{Tok: tok}}
		res, err := r.Run(tk)
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range c.want {
			if m, ok := res.Metric(name); !ok || math.Abs(m.Value-w) > 1e-12 {
				t.Errorf("%s: %s = %v, want %v (results %v)", c.reason, name, m, w, res.Gens)
			}
		}
		if strings.Contains(res.Gens[0].Response, "unrelated") {
			t.Errorf("%s: completion not cut at \\ndef: %q", c.reason, res.Gens[0].Response)
		}
		if _, ok := res.Metric("pass@10"); ok {
			t.Errorf("%s: pass@10 reported with fewer than 10 samples", c.reason)
		}
	}
}

// TestPartialResume interrupts an xlsum run after two items and resumes
// it: the finished items are not generated again and the result equals an
// uninterrupted run's.
func TestPartialResume(t *testing.T) {
	tk := mustLoad(t, "xlsum", fixture("xlsum.jsonl"), zeroShot)
	tok := goldenTokenizer(t)
	full, err := (&Runner{LM: &scriptLM{tok: tok, answer: xlsumAnswers}, Enc: Encoder{Tok: tok}}).Run(tk)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "xlsum.partial.jsonl")
	lm := &scriptLM{tok: tok, answer: xlsumAnswers, failAfter: 2}
	r := &Runner{LM: lm, Enc: Encoder{Tok: tok}, Partial: part, PartialKey: "model-a"}
	if _, err := r.Run(tk); err == nil {
		t.Fatal("the interrupted run did not fail")
	}
	// A write cut short by the interruption.
	f, _ := os.OpenFile(part, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id": "half`)
	f.Close()
	lm2 := &scriptLM{tok: tok, answer: xlsumAnswers}
	r.LM = lm2
	var progress []int64
	r.Progress = func(done, total int64) { progress = append(progress, done) }
	res, err := r.Run(tk)
	if err != nil {
		t.Fatal(err)
	}
	if lm2.calls != 1 {
		t.Errorf("resumed run generated %d items, want 1 (2 were finished)", lm2.calls)
	}
	if fmt.Sprint(res.Metrics) != fmt.Sprint(full.Metrics) || len(progress) != 3 || progress[2] != 3 {
		t.Errorf("resumed %v (progress %v), uninterrupted %v", res.Metrics, progress, full.Metrics)
	}
	cases := []struct {
		reason string
		key    string
		opts   TaskOptions
		want   string
	}{
		{"another model", "model-b", zeroShot, "another model"},
		{"another length cap", "model-a", TaskOptions{Shots: -1, MaxGenTokens: 7}, "other settings"},
		{"ROUGE with stemming", "model-a", TaskOptions{Shots: -1, RougeStem: true}, "other settings"},
	}
	for _, c := range cases {
		tk2 := mustLoad(t, "xlsum", fixture("xlsum.jsonl"), c.opts)
		r2 := &Runner{LM: &scriptLM{tok: tok, answer: xlsumAnswers}, Enc: Encoder{Tok: tok}, Partial: part, PartialKey: c.key}
		if _, err := r2.Run(tk2); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), part) {
			t.Errorf("%s: got %v, want an error naming %s and %q", c.reason, err, part, c.want)
		}
	}
	// Other prompts (1-shot) under the same settings: every item runs
	// again, as its prompt changed; the file keeps the newest outcome.
	tk1 := mustLoad(t, "xlsum", fixture("xlsum.jsonl"), TaskOptions{Shots: 1})
	lm3 := &scriptLM{tok: tok, answer: xlsumAnswers}
	r3 := &Runner{LM: lm3, Enc: Encoder{Tok: tok}, Partial: part, PartialKey: "model-a"}
	if _, err := r3.Run(tk1); err != nil || lm3.calls != 3 {
		t.Errorf("changed prompts: %v, %d items generated, want 3", err, lm3.calls)
	}
	// A smaller Limit reuses what a larger run finished.
	tkl := mustLoad(t, "xlsum", fixture("xlsum.jsonl"), TaskOptions{Shots: 1, Limit: 2})
	lm4 := &scriptLM{tok: tok, answer: xlsumAnswers}
	r4 := &Runner{LM: lm4, Enc: Encoder{Tok: tok}, Partial: part, PartialKey: "model-a"}
	if _, err := r4.Run(tkl); err != nil || lm4.calls != 0 {
		t.Errorf("limit 2 after a full run: %v, %d items generated, want 0", err, lm4.calls)
	}
}

// TestMBPPPrompt: lm-eval's mbpp prompt, 3-shot from its fixed examples of
// MBPP's prompt split, each example's code followed by [DONE].
func TestMBPPPrompt(t *testing.T) {
	tk := mustLoad(t, "mbpp", filepath.Join("testdata", "code", "mbpp.jsonl"), TaskOptions{Shots: -1})
	ctx := tk.Context(tk.Docs[1])
	first := "You are an expert Python programmer, and here is your task: Write a function to find the similar elements from the given two tuple lists. Your code should pass these tests:\n\n" +
		"assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)\nassert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)\nassert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)\n[BEGIN]\n" +
		"def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n  return (res) \n[DONE]\n\n"
	last := "You are an expert Python programmer, and here is your task: Write a function to square a number. Your code should pass these tests:\n\nassert square(3) == 9\nassert square(-2) == 4\nassert square(0) == 0\n[BEGIN]\n"
	if !strings.HasPrefix(ctx, first) || !strings.HasSuffix(ctx, "[DONE]\n\n"+last) || strings.Count(ctx, "[DONE]") != 3 {
		t.Errorf("mbpp context:\n%s", ctx)
	}
	if tk.Sampler != SamplerFirstN || tk.MaxGenTokens != mbppMaxTokens || tk.Until[0] != "[DONE]" {
		t.Errorf("mbpp: sampler %q, cap %d, until %q", tk.Sampler, tk.MaxGenTokens, tk.Until)
	}
	if got := tk.Docs[1].Problem.Program("def square(x):\n    return x * x"); got != "def square(x):\n    return x * x\nimport math\nassert square(3) == 9\nassert square(-2) == 4\nassert square(0) == 0\n" {
		t.Errorf("mbpp program: %q", got)
	}
}
