package eval

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

var update = flag.Bool("update", false, "regenerate golden inputs (tiny checkpoint, requests.json); then run testdata/golden/ref.py")

// The golden model: a tiny llama with GQA and a byte-level BPE tokenizer.
// Its weights are wide enough (std 0.3) that choices get clearly different
// scores.
const tinyConfig = `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
  "max_position_embeddings": 512, "tie_word_embeddings": false,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu",
  "bos_token_id": 304, "eos_token_id": 304, "torch_dtype": "float32"
}`

const goldenDir = "testdata/golden"

// writeTinyCheckpoint writes a random tiny checkpoint plus the golden
// tokenizer into dir.
func writeTinyCheckpoint(t testing.TB, dir, config string, seed uint64, std float64) {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	src := model.NewRandomSource(cfg, model.F32, seed)
	src.Std = std
	if err := model.SaveCheckpoint(dir, cfg, src, model.SaveOptions{DType: model.F32}); err != nil {
		t.Fatal(err)
	}
	tj, err := os.ReadFile(filepath.Join(goldenDir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadTiny(t testing.TB) (*ModelLM, data.Tokenizer) {
	t.Helper()
	dir := filepath.Join(goldenDir, "tiny")
	if *update {
		writeTinyCheckpoint(t, dir, tinyConfig, 7, 0.3)
	}
	m, err := model.Load(dir, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tok, err := data.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &ModelLM{M: m}, tok
}

// goldenCase picks one item of each task format.
type goldenCase struct {
	Task  string `json:"task"`
	Path  string `json:"path"`
	Shots int    `json:"shots"`
	Doc   int    `json:"doc"`
}

var goldenCases = []goldenCase{
	{"hellaswag", "testdata/tasks/hellaswag.jsonl", 0, 1},
	{"winogrande", "testdata/tasks/winogrande.jsonl", 1, 1},
	{"arc_easy", "testdata/tasks/arc_easy.jsonl", 0, 0},
	{"arc_challenge", "testdata/tasks/arc_challenge_hf.jsonl", 0, 1},
	{"mmlu", "testdata/tasks/mmlu", 5, 0},
	{"gsm8k", "testdata/tasks/gsm8k/test.jsonl", 2, 1},
}

type goldenRequest struct {
	Context      string `json:"context"`
	Continuation string `json:"continuation"`
	CtxIDs       []int  `json:"ctx_ids"`
	ContIDs      []int  `json:"cont_ids"`
}

type goldenItem struct {
	goldenCase
	ID       string          `json:"id"`
	Gold     int             `json:"gold"`
	Requests []goldenRequest `json:"requests"`
	// gsm8k: greedy generation of GenTokens tokens after GenCtx.
	GenCtx    []int `json:"gen_ctx_ids,omitempty"`
	GenTokens int   `json:"gen_tokens,omitempty"`
}

type goldenOut struct {
	Task   string    `json:"task"`
	LogLik []float64 `json:"loglik"`
	Greedy []bool    `json:"greedy"`
	GenIDs []int     `json:"gen_ids"`
}

// buildGolden assembles each case's requests as the runner does.
func buildGolden(t *testing.T, lm *ModelLM, tok data.Tokenizer) ([]goldenItem, [][]TokenScores, [][]int) {
	enc := Encoder{Tok: tok}
	r := &Runner{LM: lm, Enc: enc}
	var items []goldenItem
	var scores [][]TokenScores
	var gens [][]int
	for _, c := range goldenCases {
		tk := mustLoad(t, c.Task, c.Path, TaskOptions{Shots: c.Shots, FewShotSampler: SamplerFirstN})
		d := tk.Docs[c.Doc]
		it := goldenItem{goldenCase: c, ID: d.ID, Gold: d.Gold}
		pairs := tk.Requests(d)
		if tk.Output == GenerateUntil {
			// Score the reference solution as a continuation, and
			// generate a few greedy tokens.
			pairs = []Pair{{tk.Context(d), targetDelimiter + d.Target}}
			it.GenCtx = tok.Encode(tk.Context(d))
			it.GenTokens = 8
			g, err := lm.Generate(it.GenCtx, it.GenTokens, nil)
			if err != nil {
				t.Fatal(err)
			}
			gens = append(gens, g)
		} else {
			gens = append(gens, nil)
		}
		var ss []TokenScores
		for _, p := range pairs {
			ctx, cont, err := enc.EncodePair(p.Context, p.Continuation)
			if err != nil {
				t.Fatal(err)
			}
			it.Requests = append(it.Requests, goldenRequest{p.Context, p.Continuation, ctx, cont})
			if tk.Output == GenerateUntil {
				res, err := lm.Score([]ScoreRequest{{ctx, [][]int{cont}}})
				if err != nil {
					t.Fatal(err)
				}
				ss = append(ss, res[0][0])
			}
		}
		if tk.Output == MultipleChoice {
			one := &Task{Name: tk.Name, Docs: []Doc{d}, Shots: tk.Shots, fewshot: tk.fewshot,
				fewshotFromDocs: tk.fewshotFromDocs, description: tk.description}
			all, err := r.ChoiceLogLiks(one)
			if err != nil {
				t.Fatal(err)
			}
			ss = all[0]
		}
		items = append(items, it)
		scores = append(scores, ss)
	}
	return items, scores, gens
}

// TestGoldenLogLiks checks per-choice log-likelihoods of one item of each
// task format against testdata/golden/golden.json, written by ref.py: an
// independent PyTorch llama forward pass in float64 over the token ids of
// requests.json, whose prompt strings ref.py rebuilds from the task files
// with its own implementation of lm-eval's formats.
func TestGoldenLogLiks(t *testing.T) {
	lm, tok := loadTiny(t)
	items, scores, gens := buildGolden(t, lm, tok)
	reqPath := filepath.Join(goldenDir, "requests.json")
	if *update {
		b, _ := json.MarshalIndent(items, "", " ")
		if err := os.WriteFile(reqPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote requests.json; now run: cd eval/testdata/golden && /usr/bin/python3 ref.py")
	}
	var want []goldenItem
	b, err := os.ReadFile(reqPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(items, want) {
		t.Errorf("request assembly changed: requests.json differs (run with -update and ref.py if intended)")
	}
	var gold []goldenOut
	b, err = os.ReadFile(filepath.Join(goldenDir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &gold); err != nil {
		t.Fatal(err)
	}
	if len(gold) != len(items) {
		t.Fatalf("golden.json has %d items, want %d", len(gold), len(items))
	}
	worst := 0.0
	defer func() { t.Logf("largest |Go − PyTorch| per-choice log-likelihood difference: %.2g", worst) }()
	for i, it := range items {
		g := gold[i]
		if g.Task != it.Task || len(g.LogLik) != len(scores[i]) {
			t.Fatalf("%s: golden item mismatch (%s, %d choices)", it.Task, g.Task, len(g.LogLik))
		}
		for c, s := range scores[i] {
			d := math.Abs(s.Sum() - g.LogLik[c])
			worst = math.Max(worst, d)
			if d > 1e-4 {
				t.Errorf("%s choice %d: loglik %.6f, reference %.6f (|Δ| %.2g)", it.Task, c, s.Sum(), g.LogLik[c], d)
			}
			if s.IsGreedy() != g.Greedy[c] {
				t.Errorf("%s choice %d: is_greedy %v, reference %v", it.Task, c, s.IsGreedy(), g.Greedy[c])
			}
		}
		if it.GenTokens > 0 && !reflect.DeepEqual(gens[i], g.GenIDs) {
			t.Errorf("%s: greedy tokens %v, reference %v", it.Task, gens[i], g.GenIDs)
		}
	}
}

// TestSharedContextEqualsFullForward checks, for every item of every task
// fixture, that the KV-shared scores equal an `eval nll`-style full forward
// pass over context+continuation (model.SequenceNLL).
func TestSharedContextEqualsFullForward(t *testing.T) {
	lm, tok := loadTiny(t)
	enc := Encoder{Tok: tok}
	r := &Runner{LM: lm, Enc: enc, Batch: 3}
	truncated := 0
	defer func() {
		if truncated == 0 {
			t.Error("no request exercised left truncation")
		}
	}()
	for _, c := range goldenCases {
		if c.Task == "gsm8k" {
			continue
		}
		tk := mustLoad(t, c.Task, c.Path, TaskOptions{Shots: c.Shots, FewShotSampler: SamplerFirstN})
		all, err := r.ChoiceLogLiks(tk)
		if err != nil {
			t.Fatal(err)
		}
		for di, d := range tk.Docs {
			for ci, p := range tk.Requests(d) {
				ctx, cont, _ := enc.EncodePair(p.Context, p.Continuation)
				// The 5-shot physics prompts exceed the 512-token window:
				// lm-eval drops the oldest context tokens.
				if len(ctx)+len(cont) > lm.MaxLength()+1 {
					truncated++
				}
				ctx, _ = truncateLeft(ctx, cont, lm.MaxLength())
				// lm-eval feeds (ctx+cont)[:-1]: at most the window, which
				// the forward pass enforces.
				seq := append(append([]int{}, ctx...), cont[:len(cont)-1]...)
				lg, err := lm.M.Forward([][]int{seq}, nil)
				if err != nil {
					t.Fatal(err)
				}
				V := lm.M.Cfg.VocabSize
				var want float64
				for i, id := range cont {
					row := len(ctx) - 1 + i
					l, _ := logProbAt(lg[row*V:(row+1)*V], id)
					want += l
				}
				if got := all[di][ci].Sum(); math.Abs(got-want) > 1e-4 {
					t.Errorf("%s %s choice %d: shared %.6f, full forward %.6f", c.Task, d.ID, ci, got, want)
				}
			}
		}
	}
}

// TestHandScoredItems runs the golden items through the full task path and
// checks acc and acc_norm against values worked out by hand from the
// reference log-likelihoods in golden.json:
//
//	hellaswag  ll −277.56 −206.57 −211.96 −113.66, lengths 50 37 41 23 chars
//	           → per char −5.55 −5.58 −5.17 −4.94: pred 3, pred_norm 3, gold 0
//	arc_easy   ll −40.45 −28.94 −33.96 −54.37, lengths 6 7 7 8
//	           → −6.74 −4.13 −4.85 −6.80: pred 1, pred_norm 1, gold 1
//	arc_chall. ll −48.12 −43.49 −54.11 −38.09, lengths 9 8 8 7
//	           → −5.35 −5.44 −6.76 −5.44: pred 3, pred_norm 0, gold 1
//	mmlu       ll −7.00 −7.91 −9.15 −8.87 (one letter each): pred 0, gold 1
func TestHandScoredItems(t *testing.T) {
	lm, tok := loadTiny(t)
	r := &Runner{LM: lm, Enc: Encoder{Tok: tok}}
	cases := []struct {
		task           string
		pred, predNorm int
		acc, accNorm   float64
		choiceChars    []int
	}{
		{"hellaswag", 3, 3, 0, 0, []int{50, 37, 41, 23}},
		{"arc_easy", 1, 1, 1, 1, []int{6, 7, 7, 8}},
		{"arc_challenge", 3, 0, 0, 0, []int{9, 8, 8, 7}},
		{"mmlu", 0, 0, 0, 0, []int{1, 1, 1, 1}},
	}
	for _, c := range cases {
		var gc goldenCase
		for _, g := range goldenCases {
			if g.Task == c.task {
				gc = g
			}
		}
		tk := mustLoad(t, gc.Task, gc.Path, TaskOptions{Shots: gc.Shots, FewShotSampler: SamplerFirstN})
		d := tk.Docs[gc.Doc]
		for i, n := range c.choiceChars {
			if got := len([]rune(d.Choices[i])); got != n {
				t.Errorf("%s choice %d: %d characters, want %d", c.task, i, got, n)
			}
		}
		tk.Docs = []Doc{d}
		res, err := r.Run(tk)
		if err != nil {
			t.Fatal(err)
		}
		o := res.Items[0]
		if o.Pred != c.pred || o.PredNrm != c.predNorm || o.Acc != c.acc || o.AccNorm != c.accNorm {
			t.Errorf("%s: pred %d/%d acc %v/%v, want %d/%d %v/%v", c.task, o.Pred, o.PredNrm, o.Acc, o.AccNorm, c.pred, c.predNorm, c.acc, c.accNorm)
		}
		if m, _ := res.Metric("acc"); m.Value != c.acc {
			t.Errorf("%s: task acc %v", c.task, m.Value)
		}
	}
}

// TestChunkedContinuations forces one-token chunks: the scores must not
// depend on how the continuation is fed through the cache.
func TestChunkedContinuations(t *testing.T) {
	lm, tok := loadTiny(t)
	enc := Encoder{Tok: tok}
	ctx, cont, err := enc.EncodePair("Question: What do plants need to make food?\nAnswer:", " sunlight and water from the soil")
	if err != nil {
		t.Fatal(err)
	}
	whole, err := lm.Score([]ScoreRequest{{ctx, [][]int{cont, cont[:3]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func(b int) { logitBudget = b }(logitBudget)
	for _, budget := range []int{lm.M.Cfg.VocabSize, 3 * lm.M.Cfg.VocabSize} {
		logitBudget = budget
		got, err := lm.Score([]ScoreRequest{{ctx, [][]int{cont, cont[:3]}}})
		if err != nil {
			t.Fatal(err)
		}
		for c := range got[0] {
			for i := range got[0][c].LogProb {
				if d := math.Abs(got[0][c].LogProb[i] - whole[0][c].LogProb[i]); d > 1e-5 {
					t.Errorf("budget %d, continuation %d token %d: %v vs %v", budget, c, i, got[0][c].LogProb[i], whole[0][c].LogProb[i])
				}
			}
		}
	}
}
