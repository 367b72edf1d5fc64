package reproduce

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/device"
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
	m, _ := readMarker(dir)
	return m.Key
}

// stageSeconds reads how long the finished stage in dir took.
func stageSeconds(dir string) float64 {
	m, _ := readMarker(dir)
	return m.Seconds
}

// stageRun records the finished stage in dir, with the device its marker
// names (as Result.Device does).
func stageRun(name, dir string, skipped bool, sec float64) StageRun {
	m, _ := readMarker(dir)
	return StageRun{Name: name, Skipped: skipped, Seconds: sec,
		Device: devSpec{kind: device.Kind(markerDevice(m)), noTF32: m.NoTF32}.String(), GPU: m.GPU, BLASCore: m.BLASCore}
}

// evaluate measures e: held-out losses always, the next-line tasks for
// seed 1 (and unseeded models) only: their item standard error (about ±5
// points at 100 items) dwarfs the spread between seeds, and they are most
// of an evaluation's time.
func (p *pipeline) evaluate(e *Entry, dataKey, tasksKey string) error {
	c := p.c
	modelDir := p.path(e.Dir)
	tasks := e.Seed <= 1
	if !tasks {
		tasksKey = "" // a losses-only evaluation
	}
	key := evalKey(c, p.dev, stageKeyOf(filepath.Dir(modelDir)), dataKey, tasksKey)
	rel := "eval/" + e.Name
	err := p.computeStage(rel, key, func(tmp string) error {
		taskDir := p.path("tasks")
		if !tasks {
			taskDir = ""
		}
		ev, err := evaluateModel(modelDir, p.path("tokenizer"), p.path("data"), taskDir, c, p.dev)
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
// the models were trained on) and, unless taskDir is "", accuracy on each
// next-line task, with the eval package (what `minitron eval ppl` and
// `minitron eval tasks` run).
func evaluateModel(modelDir, tokDir, dataDir, taskDir string, c Config, d devSpec) (*Eval, error) {
	var mo model.Options
	if d.cuda() {
		// The weights go up to the device once: map the file instead of
		// keeping an f32 copy on the host.
		mo.Weights = model.WeightsStreaming
	}
	m, err := model.Load(modelDir, mo)
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
	// The CPU scores with 2 workers; the device takes 64 requests a call to
	// fill its passes.
	lm, batch, closeLM, err := eval.NewLM(m, eval.LMOptions{Device: d.kind, NoTF32: d.noTF32, MaxLen: c.SeqLen, Workers: 2})
	if err != nil {
		return nil, err
	}
	defer closeLM()
	ev := &Eval{PPL: map[string]PPL{}, Tasks: map[string]TaskScore{}}
	for _, cp := range Corpora {
		docs, err := heldOutTokens(filepath.Join(dataDir, cp.Key+"_val"), c.EvalTokens)
		if err != nil {
			return nil, err
		}
		r, err := eval.TokenPerplexity(lm, docs, pfx, eval.PPLOptions{SeqLen: c.SeqLen, Batch: batch})
		if err != nil {
			return nil, fmt.Errorf("%s perplexity: %w", cp.Key, err)
		}
		ev.PPL[cp.Key] = PPL{Tokens: r.Tokens, Loss: r.TokenLoss, PPL: r.TokenPerplexity}
		if taskDir == "" {
			continue
		}

		t, err := eval.LoadTask("hellaswag", filepath.Join(taskDir, cp.Key+"_nextline.jsonl"), eval.TaskOptions{Shots: -1})
		if err != nil {
			return nil, err
		}
		runner := &eval.Runner{LM: lm, Enc: enc, Batch: batch}
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
