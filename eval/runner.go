package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// Metric is a score with its standard error (NaN when undefined, written
// as null in JSON).
type Metric struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Stderr float64 `json:"stderr"`
}

// MarshalJSON writes NaN values as null.
func (m Metric) MarshalJSON() ([]byte, error) {
	num := func(f float64) any {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil
		}
		return f
	}
	return json.Marshal(struct {
		Name   string `json:"name"`
		Value  any    `json:"value"`
		Stderr any    `json:"stderr"`
	}{m.Name, num(m.Value), num(m.Stderr)})
}

// UnmarshalJSON reads null as NaN.
func (m *Metric) UnmarshalJSON(b []byte) error {
	var v struct {
		Name          string
		Value, Stderr *float64
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m.Name, m.Value, m.Stderr = v.Name, math.NaN(), math.NaN()
	if v.Value != nil {
		m.Value = *v.Value
	}
	if v.Stderr != nil {
		m.Stderr = *v.Stderr
	}
	return nil
}

// GroupResult is one sub-task's score (an MMLU subject).
type GroupResult struct {
	Group   string   `json:"group"`
	N       int      `json:"n"`
	Metrics []Metric `json:"metrics"`
}

// GenOutcome is a scored generation item: gsm8k's answer matches, xlsum's
// ROUGE or a code task's executed samples (only its kind's fields are set).
type GenOutcome struct {
	ID       string `json:"id"`
	Response string `json:"response"`
	*MatchOutcome
	Rouge *Rouge `json:"rouge,omitempty"`
	*CodeOutcome
}

// MatchOutcome is gsm8k's extracted answers and whether they match.
type MatchOutcome struct {
	Strict     string `json:"strict"`
	Flexible   string `json:"flexible"`
	StrictOK   bool   `json:"strict_match"`
	FlexibleOK bool   `json:"flexible_match"`
}

// TaskResult is the outcome of one task on one model.
type TaskResult struct {
	Task    string        `json:"task"`
	Shots   int           `json:"shots"`
	N       int           `json:"n"`
	Metrics []Metric      `json:"metrics"`
	Groups  []GroupResult `json:"groups,omitempty"`
	Items   []MCOutcome   `json:"items,omitempty"`
	Gens    []GenOutcome  `json:"generations,omitempty"`
	// Sampler is the few-shot sampler that chose the examples (with Shots).
	Sampler string `json:"fewshot_sampler,omitempty"`
	// Sandbox says what confined a code task's samples on this machine.
	Sandbox []string `json:"sandbox,omitempty"`
}

// Metric returns the named metric, false when absent.
func (r *TaskResult) Metric(name string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Runner evaluates tasks on one model.
type Runner struct {
	LM  LM
	Enc Encoder
	// Batch is how many contexts go to one LM.Score call (≥ 1).
	Batch int
	// Progress, when set, is called as items are scored with the items of
	// the task being run done so far and its total.
	Progress func(done, total int64)
	// Partial, when set, is a JSONL file of a generation task's finished
	// items: read first (those items are not run again) and appended to as
	// items finish, so an interrupted run resumes where it stopped.
	// PartialKey names what else must match for its items to be reused
	// (the model, say); the task's own settings are checked as well.
	Partial, PartialKey string
}

// Run evaluates t.
func (r *Runner) Run(t *Task) (*TaskResult, error) {
	if len(t.Docs) == 0 {
		return nil, fmt.Errorf("%s: no items to evaluate", t.Name)
	}
	if t.Output != MultipleChoice {
		return r.runGen(t)
	}
	return r.runMC(t)
}

// progressCounter adds up work done and reports it to a Progress callback
// (none: it only counts).
type progressCounter struct {
	fn          func(done, total int64)
	done, total int64
}

func (c *progressCounter) add(n int) {
	c.done += int64(n)
	if c.fn != nil {
		c.fn(c.done, c.total)
	}
}

// where a choice's scores land: request index and continuation index.
type slot struct{ req, cont int }

// ChoiceLogLiks returns the per-choice log-likelihoods of each item of t.
// Choices whose (truncated) context tokens coincide are sent as one
// ScoreRequest, so the LM can run their context once.
func (r *Runner) ChoiceLogLiks(t *Task) ([][]TokenScores, error) {
	maxLen := r.LM.MaxLength()
	batch := max(r.Batch, 1)
	out := make([][]TokenScores, len(t.Docs))
	prog := &progressCounter{fn: r.Progress, total: int64(len(t.Docs))}

	var reqs []ScoreRequest
	var slots [][]slot // per pending doc, per choice
	var pendingDocs []int
	flush := func() error {
		if len(reqs) == 0 {
			return nil
		}
		res, err := r.LM.Score(reqs)
		if err != nil {
			return err
		}
		for k, di := range pendingDocs {
			out[di] = make([]TokenScores, len(slots[k]))
			for c, s := range slots[k] {
				out[di][c] = res[s.req][s.cont]
			}
		}
		prog.add(len(pendingDocs))
		reqs, slots, pendingDocs = reqs[:0], slots[:0], pendingDocs[:0]
		return nil
	}
	for di, d := range t.Docs {
		pairs := t.Requests(d)
		ds := make([]slot, len(pairs))
		for c, p := range pairs {
			ctx, cont, err := r.Enc.EncodePair(p.Context, p.Continuation)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.ID, err)
			}
			if len(cont) == 0 {
				return nil, fmt.Errorf("%s: choice %d encodes to no tokens", d.ID, c)
			}
			if ctx, err = truncateLeft(ctx, cont, maxLen); err != nil {
				return nil, fmt.Errorf("%s: %w", d.ID, err)
			}
			// Share the context with an earlier choice of this item.
			ri := -1
			for j := len(reqs) - 1; j >= 0 && j >= len(reqs)-len(pairs); j-- {
				if slices.Equal(reqs[j].Context, ctx) {
					ri = j
					break
				}
			}
			if ri < 0 {
				reqs = append(reqs, ScoreRequest{Context: ctx})
				ri = len(reqs) - 1
			}
			reqs[ri].Continuations = append(reqs[ri].Continuations, cont)
			ds[c] = slot{ri, len(reqs[ri].Continuations) - 1}
		}
		slots = append(slots, ds)
		pendingDocs = append(pendingDocs, di)
		if len(reqs) >= batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Runner) runMC(t *Task) (*TaskResult, error) {
	scores, err := r.ChoiceLogLiks(t)
	if err != nil {
		return nil, err
	}
	res := &TaskResult{Task: t.Name, Shots: t.Shots, N: len(t.Docs), Sampler: t.samplerUsed()}
	for i, d := range t.Docs {
		lls := make([]float64, len(scores[i]))
		for c, s := range scores[i] {
			lls[c] = s.Sum()
		}
		res.Items = append(res.Items, ScoreMC(d, lls))
	}
	res.Metrics, res.Groups = mcMetrics(res.Items, t.AccNorm)
	return res, nil
}

// mcMetrics aggregates item outcomes. With groups (MMLU subjects) the task
// score is lm-eval's group aggregate: the mean weighted by subject size with
// the pooled standard error; "acc_macro" adds the plain mean of subjects.
func mcMetrics(items []MCOutcome, accNorm bool) ([]Metric, []GroupResult) {
	names := []string{"acc"}
	if accNorm {
		names = append(names, "acc_norm")
	}
	val := func(o MCOutcome, name string) float64 {
		if name == "acc" {
			return o.Acc
		}
		return o.AccNorm
	}
	byGroup := map[string][]MCOutcome{}
	var order []string
	for _, o := range items {
		if _, ok := byGroup[o.Group]; !ok {
			order = append(order, o.Group)
		}
		byGroup[o.Group] = append(byGroup[o.Group], o)
	}
	var metrics []Metric
	if len(order) == 1 && order[0] == "" {
		for _, n := range names {
			xs := make([]float64, len(items))
			for i, o := range items {
				xs[i] = val(o, n)
			}
			m, se := MeanStderr(xs)
			metrics = append(metrics, Metric{n, m, se})
		}
		return metrics, nil
	}
	slices.Sort(order)
	var groups []GroupResult
	for _, g := range order {
		gr := GroupResult{Group: g, N: len(byGroup[g])}
		for _, n := range names {
			xs := make([]float64, len(byGroup[g]))
			for i, o := range byGroup[g] {
				xs[i] = val(o, n)
			}
			m, se := MeanStderr(xs)
			gr.Metrics = append(gr.Metrics, Metric{n, m, se})
		}
		groups = append(groups, gr)
	}
	for k, n := range names {
		var sum, macro float64
		var ses []float64
		var sizes []int
		tot := 0
		for _, g := range groups {
			m := g.Metrics[k]
			sum += m.Value * float64(g.N)
			macro += m.Value
			tot += g.N
			ses = append(ses, m.Stderr)
			sizes = append(sizes, g.N)
		}
		metrics = append(metrics, Metric{n, sum / float64(tot), PooledStderr(ses, sizes)})
		metrics = append(metrics, Metric{n + "_macro", macro / float64(len(groups)), math.NaN()})
	}
	return metrics, groups
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
