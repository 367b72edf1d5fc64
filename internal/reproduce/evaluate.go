package reproduce

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/eval"
	"github.com/minitron-dev/minitron/model"
)

// Corpora are the evaluated domains, in report order.
var Corpora = []struct{ Key, Label string }{{"go", "Go"}, {"opticks", "Opticks"}}

// PPL is a held-out perplexity measurement.
type PPL struct {
	Tokens int     `json:"tokens"`
	Loss   float64 `json:"loss"` // mean NLL per token (nats)
	PPL    float64 `json:"ppl"`
}

// TaskScore is a multiple-choice result in percent.
type TaskScore struct {
	N             int     `json:"n"`
	Acc           float64 `json:"acc"`
	AccStderr     float64 `json:"acc_stderr"`
	AccNorm       float64 `json:"acc_norm"`
	AccNormStderr float64 `json:"acc_norm_stderr"`
}

// Eval is one model's results on both corpora.
type Eval struct {
	PPL   map[string]PPL       `json:"ppl"`   // by corpus key
	Tasks map[string]TaskScore `json:"tasks"` // by corpus key (next-line task)
}

// stageKeyOf reads the key of the finished stage in dir ("" if none).
func stageKeyOf(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return ""
	}
	var m stageMarker
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	return m.Key
}

// stageSeconds reads how long the finished stage in dir took.
func stageSeconds(dir string) float64 {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return 0
	}
	var m stageMarker
	if json.Unmarshal(b, &m) != nil {
		return 0
	}
	return m.Seconds
}

func (p *pipeline) evaluate(e *Entry, dataKey, tasksKey string) error {
	c := p.c
	modelDir := p.path(e.Dir)
	key := StageKey("eval/2", stageKeyOf(filepath.Dir(modelDir)), dataKey, tasksKey, c.EvalTokens, c.SeqLen)
	rel := "eval/" + e.Name
	err := p.stage(rel, key, func(tmp string) error {
		ev, err := evaluateModel(modelDir, p.path("tokenizer"), p.path("data"), p.path("tasks"), c)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
		return writeJSON(filepath.Join(tmp, "eval.json"), ev)
	})
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p.path(rel, "eval.json"))
	if err != nil {
		return err
	}
	e.Eval = &Eval{}
	if err := json.Unmarshal(b, e.Eval); err != nil {
		return fmt.Errorf("%s: %w", p.path(rel, "eval.json"), err)
	}
	return nil
}

// evaluateModel measures held-out perplexity on the first EvalTokens
// tokens of each corpus's validation split (windows of SeqLen, the length
// the models were trained on) and accuracy on each next-line task, with
// the eval package (what `minitron eval ppl` and `minitron eval tasks`
// run).
func evaluateModel(modelDir, tokDir, dataDir, taskDir string, c Config) (*Eval, error) {
	m, err := model.Load(modelDir, model.Options{})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	tok, err := data.LoadTokenizer(tokDir)
	if err != nil {
		return nil, err
	}
	enc := eval.Encoder{Tok: tok}
	pfx, err := enc.PrefixToken()
	if err != nil {
		return nil, err
	}
	lm := &eval.ModelLM{M: m, MaxLen: c.SeqLen, Workers: 2}
	ev := &Eval{PPL: map[string]PPL{}, Tasks: map[string]TaskScore{}}
	for _, cp := range Corpora {
		docs, err := heldOutTokens(filepath.Join(dataDir, cp.Key+"_val"), c.EvalTokens)
		if err != nil {
			return nil, err
		}
		r, err := eval.TokenPerplexity(lm, docs, pfx, eval.PPLOptions{SeqLen: c.SeqLen, Batch: 4})
		if err != nil {
			return nil, fmt.Errorf("%s perplexity: %w", cp.Key, err)
		}
		ev.PPL[cp.Key] = PPL{Tokens: r.Tokens, Loss: r.TokenLoss, PPL: r.TokenPerplexity}

		t, err := eval.LoadTask("hellaswag", filepath.Join(taskDir, cp.Key+"_nextline.jsonl"), eval.TaskOptions{Shots: -1})
		if err != nil {
			return nil, err
		}
		runner := &eval.Runner{LM: lm, Enc: enc, Batch: 8}
		tr, err := runner.Run(t)
		if err != nil {
			return nil, fmt.Errorf("%s task: %w", cp.Key, err)
		}
		var s TaskScore
		s.N = tr.N
		if mt, ok := tr.Metric("acc"); ok {
			s.Acc, s.AccStderr = 100*mt.Value, 100*mt.Stderr
		}
		if mt, ok := tr.Metric("acc_norm"); ok {
			s.AccNorm, s.AccNormStderr = 100*mt.Value, 100*mt.Stderr
		}
		ev.Tasks[cp.Key] = s
	}
	return ev, nil
}

// heldOutTokens reads validation documents until limit tokens (the last
// one cut short).
func heldOutTokens(prefix string, limit int) ([][]int, error) {
	ds, err := data.OpenIndexed(prefix)
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	var docs [][]int
	n := 0
	for i := 0; i < ds.NumDocuments() && n < limit; i++ {
		d, err := ds.Document(i)
		if err != nil {
			return nil, err
		}
		k := min(len(d), limit-n)
		ids := make([]int, k)
		for j := range ids {
			ids[j] = int(d[j])
		}
		docs = append(docs, ids)
		n += k
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no held-out tokens", prefix)
	}
	return docs, nil
}
