package eval

import (
	"fmt"
	"strings"

	"github.com/minitron-dev/minitron/model"
)

// Decoder is an LM that can also sample (temperature, top-p), which pass@k
// with more than one completion per problem needs; ModelLM and DeviceLM
// are both Decoders.
type Decoder interface {
	Decode(prompt []int, opt model.GenerateOptions) (*model.GenerateResult, error)
}

var (
	_ Decoder = (*ModelLM)(nil)
	_ Decoder = (*DeviceLM)(nil)
)

// genContext is the prompt of a generation item as tokens: lm-eval keeps
// the last max_length − max_gen_toks of them; an empty prompt is the
// prefix token.
func (r *Runner) genContext(t *Task, d Doc, keep int) ([]int, error) {
	ctx := r.Enc.Tok.Encode(t.Context(d))
	if len(ctx) == 0 {
		p, err := r.Enc.PrefixToken()
		if err != nil {
			return nil, err
		}
		ctx = []int{p}
	}
	if len(ctx) > keep {
		ctx = ctx[len(ctx)-keep:]
	}
	return ctx, nil
}

// stopFunc reports when the decoded generation holds one of until.
func (r *Runner) stopFunc(until []string) func(gen []int) bool {
	return func(gen []int) bool {
		s := r.Enc.Tok.Decode(gen)
		for _, u := range until {
			if strings.Contains(s, u) {
				return true
			}
		}
		return false
	}
}

// greedy generates one response and cuts it at the stop strings.
func (r *Runner) greedy(t *Task, ctx []int, maxNew int) (string, error) {
	gen, err := r.LM.Generate(ctx, maxNew, r.stopFunc(t.Until))
	if err != nil {
		return "", err
	}
	return CutAtStop(r.Enc.Tok.Decode(gen), t.Until), nil
}

// sample draws the i-th sampled response of an item: a seed per item and
// sample, so a resumed run draws the same completions.
func (r *Runner) sample(t *Task, ctx []int, maxNew, item, i int) (string, error) {
	dec, ok := r.LM.(Decoder)
	if !ok {
		return "", fmt.Errorf("%s: sampling %d completions needs an LM that can sample (ModelLM or DeviceLM)", t.Name, t.CodeRun.N)
	}
	stop := r.stopFunc(t.Until)
	var gen []int
	res, err := dec.Decode(ctx, model.GenerateOptions{
		MaxNewTokens: maxNew, Temperature: t.CodeRun.Temperature, TopP: t.CodeRun.TopP,
		Seed:    t.CodeRun.Seed + int64(item)*100003 + int64(i),
		OnToken: func(id int) bool { gen = append(gen, id); return !stop(gen) },
	})
	if err != nil {
		return "", err
	}
	toks := res.Tokens
	if res.StoppedOnEOS && len(toks) > 0 {
		toks = toks[:len(toks)-1]
	}
	return CutAtStop(r.Enc.Tok.Decode(toks), t.Until), nil
}

func (r *Runner) runGen(t *Task) (*TaskResult, error) {
	res := &TaskResult{Task: t.Name, Shots: t.Shots, N: len(t.Docs), Sampler: t.samplerUsed()}
	maxNew := t.MaxGenTokens
	if maxNew <= 0 {
		maxNew = 256
	}
	// lm-eval keeps the last max_length - max_gen_toks context tokens.
	keep := r.LM.MaxLength() - maxNew
	if keep < 1 {
		return nil, fmt.Errorf("%s: a %d-token window leaves no room for a prompt and %d new tokens", t.Name, r.LM.MaxLength(), maxNew)
	}
	var sb *Sandbox
	if t.Output == Code {
		var err error
		if sb, err = NewSandbox(t.CodeRun.Limits); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		defer sb.Close()
		res.Sandbox = sb.Enforced()
	}
	part, err := openPartial(r.Partial, t, r.PartialKey)
	if err != nil {
		return nil, err
	}
	defer part.close()
	prog := &progressCounter{fn: r.Progress, total: int64(len(t.Docs))}
	for di, d := range t.Docs {
		prompt := t.Context(d)
		if o, ok := part.lookup(d.ID, prompt); ok {
			res.Gens = append(res.Gens, o)
			prog.add(1)
			continue
		}
		ctx, err := r.genContext(t, d, keep)
		if err != nil {
			return nil, err
		}
		o := GenOutcome{ID: d.ID}
		switch t.Output {
		case Code:
			n := max(t.CodeRun.N, 1)
			comps := make([]string, n)
			for i := range comps {
				if t.CodeRun.Temperature == 0 {
					// Greedy decoding gives the same completion every time.
					if i == 0 {
						comps[0], err = r.greedy(t, ctx, maxNew)
					} else {
						comps[i] = comps[0]
					}
				} else {
					comps[i], err = r.sample(t, ctx, maxNew, di, i)
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", d.ID, err)
				}
			}
			co, err := sb.RunProblem(d.Problem, comps)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.ID, err)
			}
			o.Response, o.CodeOutcome = comps[0], co
		default:
			resp, err := r.greedy(t, ctx, maxNew)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.ID, err)
			}
			o.Response = resp
			if t.Output == Summarize {
				rg := RougeOf(d.Target, resp, t.RougeStem)
				o.Rouge = &rg
			} else {
				mo := &MatchOutcome{Strict: StrictExtract(resp), Flexible: FlexibleExtract(resp)}
				mo.StrictOK = ExactMatch(mo.Strict, d.Target)
				mo.FlexibleOK = ExactMatch(mo.Flexible, d.Target)
				o.MatchOutcome = mo
			}
		}
		if err := part.add(o, prompt); err != nil {
			return nil, err
		}
		res.Gens = append(res.Gens, o)
		prog.add(1)
	}
	res.Metrics = genMetrics(t, res.Gens)
	return res, nil
}

// genMetrics aggregates generation outcomes: gsm8k's exact match, ROUGE F1
// (a fraction; reports print it ×100 like the card), or pass@k.
func genMetrics(t *Task, gens []GenOutcome) []Metric {
	col := func(f func(o GenOutcome) float64) Metric {
		xs := make([]float64, len(gens))
		for i, o := range gens {
			xs[i] = f(o)
		}
		m, se := MeanStderr(xs)
		return Metric{Value: m, Stderr: se}
	}
	named := func(name string, m Metric) Metric { m.Name = name; return m }
	switch t.Output {
	case Summarize:
		return []Metric{
			named("rouge1", col(func(o GenOutcome) float64 { return o.Rouge.R1.F })),
			named("rouge2", col(func(o GenOutcome) float64 { return o.Rouge.R2.F })),
			named("rougeL", col(func(o GenOutcome) float64 { return o.Rouge.RL.F })),
		}
	case Code:
		var out []Metric
		for _, k := range passKs(gens) {
			out = append(out, named(fmt.Sprintf("pass@%d", k), col(func(o GenOutcome) float64 {
				return PassAtK(o.N, o.Correct, k)
			})))
		}
		return out
	}
	return []Metric{
		named("exact_match,strict-match", col(func(o GenOutcome) float64 { return b2f(o.StrictOK) })),
		named("exact_match,flexible-extract", col(func(o GenOutcome) float64 { return b2f(o.FlexibleOK) })),
	}
}
