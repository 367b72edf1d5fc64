package eval

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/minitron-dev/minitron/model"
)

// ModelReport is one model's results.
type ModelReport struct {
	// Name labels the model in tables (its directory's base name unless
	// given).
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// Params as the Minitron papers count them.
	Params       int64         `json:"params"`
	EmbedParams  int64         `json:"embedding_params"`
	NonEmbParams int64         `json:"non_embedding_params"`
	Tasks        []*TaskResult `json:"tasks"`
	// PPL are perplexity measurements, keyed by the name of their source.
	PPL []NamedPPL `json:"perplexity,omitempty"`
}

// NamedPPL is a perplexity result under a short name (e.g. "opticks").
type NamedPPL struct {
	Name string `json:"name"`
	*PPLResult
}

func (m *ModelReport) ppl(name string) *PPLResult {
	for _, p := range m.PPL {
		if p.Name == name {
			return p.PPLResult
		}
	}
	return nil
}

// SetParams fills the parameter counts from cfg.
func (m *ModelReport) SetParams(pc model.ParamCounts) {
	m.Params, m.EmbedParams, m.NonEmbParams = pc.Total, pc.Embedding, pc.NonEmbedding
}

// Task returns the model's result for a task, nil when absent.
func (m *ModelReport) Task(name string) *TaskResult {
	for _, t := range m.Tasks {
		if t.Task == name {
			return t
		}
	}
	return nil
}

// Report holds several models evaluated on the same tasks, side by side.
type Report struct {
	Models []*ModelReport `json:"models"`
	// Limit is the per-task item limit used (0: all items).
	Limit int `json:"limit,omitempty"`
}

// JSON is the report as indented JSON (per-item outcomes omitted).
func (r *Report) JSON() ([]byte, error) {
	slim := &Report{Limit: r.Limit}
	for _, m := range r.Models {
		c := *m
		c.Tasks = nil
		for _, t := range m.Tasks {
			tc := *t
			tc.Items, tc.Gens = nil, nil
			c.Tasks = append(c.Tasks, &tc)
		}
		slim.Models = append(slim.Models, &c)
	}
	b, err := json.MarshalIndent(slim, "", "  ")
	return append(b, '\n'), err
}

// headline is the metric a task is usually quoted by (the model card's
// columns): acc_norm where lm-eval reports it, else acc; gsm8k's strict
// match; xlsum's ROUGE-L F1; a code task's pass@1.
func headline(t *TaskResult) (Metric, bool) {
	for _, n := range []string{"acc_norm", "acc", "exact_match,strict-match", "rougeL", "pass@1"} {
		if t.Task == "mmlu" && n == "acc_norm" {
			continue // equal to acc: all choices have one character
		}
		if m, ok := t.Metric(n); ok {
			return m, true
		}
	}
	return Metric{}, false
}

// HumanCount prints a parameter count as 4.19B, 8.3M, 12.5K.
func HumanCount(n int64) string {
	f := float64(n)
	switch {
	case f >= 1e9:
		return fmt.Sprintf("%.2fB", f/1e9)
	case f >= 1e6:
		return fmt.Sprintf("%.2fM", f/1e6)
	case f >= 1e3:
		return fmt.Sprintf("%.1fK", f/1e3)
	}
	return fmt.Sprint(n)
}

func pct(m Metric) string {
	if math.IsNaN(m.Value) {
		return "—"
	}
	if math.IsNaN(m.Stderr) {
		return fmt.Sprintf("%.1f", 100*m.Value)
	}
	return fmt.Sprintf("%.1f ± %.1f", 100*m.Value, 100*m.Stderr)
}

// pplOrder is the union of the models' perplexity sources.
func (r *Report) pplOrder() []string {
	var out []string
	for _, m := range r.Models {
		for _, p := range m.PPL {
			if !containsStr(out, p.Name) {
				out = append(out, p.Name)
			}
		}
	}
	return out
}

// taskOrder is the union of the models' tasks in first-seen order.
func (r *Report) taskOrder() []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range r.Models {
		for _, t := range m.Tasks {
			if !seen[t.Task] {
				seen[t.Task] = true
				out = append(out, t.Task)
			}
		}
	}
	return out
}

// Markdown renders the report: a summary table shaped like the Minitron
// model card (one row per model, its parameter counts and each task's
// headline score in percent), then every metric with its standard error,
// with the difference to the first model.
func (r *Report) Markdown() string {
	var b strings.Builder
	tasks := r.taskOrder()
	shots := map[string]int{}
	ns := map[string]int{}
	for _, m := range r.Models {
		for _, t := range m.Tasks {
			shots[t.Task], ns[t.Task] = t.Shots, t.N
		}
	}
	ppls := r.pplOrder()
	b.WriteString("## Summary\n\n")
	b.WriteString("| Model | Params | Non-embedding |")
	for _, p := range ppls {
		fmt.Fprintf(&b, " %s bits/byte |", p)
	}
	for _, t := range tasks {
		fmt.Fprintf(&b, " %s (%d-shot) |", t, shots[t])
	}
	b.WriteString("\n|---|---:|---:|")
	b.WriteString(strings.Repeat("---:|", len(ppls)+len(tasks)))
	b.WriteString("\n")
	for _, m := range r.Models {
		fmt.Fprintf(&b, "| %s | %s | %s |", m.Name, HumanCount(m.Params), HumanCount(m.NonEmbParams))
		for _, pn := range ppls {
			if p := m.ppl(pn); p != nil {
				fmt.Fprintf(&b, " %.4f |", p.BitsPerByte)
			} else {
				b.WriteString(" — |")
			}
		}
		for _, tn := range tasks {
			t := m.Task(tn)
			if t == nil {
				b.WriteString(" — |")
				continue
			}
			h, _ := headline(t)
			fmt.Fprintf(&b, " %s |", pct(h))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nScores in percent ± standard error (bits per byte: lower is better). Headline metric: acc_norm for hellaswag and arc, acc for winogrande and mmlu (size-weighted over subjects), strict-match exact match for gsm8k, ROUGE-L F1 ×100 for xlsum, pass@1 for humaneval and mbpp.")
	if r.Limit > 0 {
		fmt.Fprintf(&b, " Limited to the first %d items per task (per subject for mmlu).", r.Limit)
	}
	b.WriteString("\n\n## All metrics\n\n| Task | Metric | n |")
	for i, m := range r.Models {
		fmt.Fprintf(&b, " %s |", m.Name)
		if i > 0 {
			fmt.Fprintf(&b, " Δ %s |", m.Name)
		}
	}
	b.WriteString("\n|---|---|---:|")
	b.WriteString(strings.Repeat("---:|", 2*len(r.Models)-1))
	b.WriteString("\n")
	for _, tn := range tasks {
		var metrics []string
		for _, m := range r.Models {
			if t := m.Task(tn); t != nil {
				for _, x := range t.Metrics {
					if !containsStr(metrics, x.Name) {
						metrics = append(metrics, x.Name)
					}
				}
			}
		}
		for _, mn := range metrics {
			fmt.Fprintf(&b, "| %s | %s | %d |", tn, mn, ns[tn])
			var base Metric
			for i, m := range r.Models {
				x := Metric{Value: math.NaN(), Stderr: math.NaN()}
				if t := m.Task(tn); t != nil {
					if v, ok := t.Metric(mn); ok {
						x = v
					}
				}
				fmt.Fprintf(&b, " %s |", pct(x))
				if i == 0 {
					base = x
				} else if math.IsNaN(x.Value) || math.IsNaN(base.Value) {
					b.WriteString(" — |")
				} else {
					fmt.Fprintf(&b, " %+.1f |", 100*(x.Value-base.Value))
				}
			}
			b.WriteString("\n")
		}
	}
	if len(ppls) > 0 {
		b.WriteString("\n## Perplexity\n\n| Source | Metric |")
		for _, m := range r.Models {
			fmt.Fprintf(&b, " %s |", m.Name)
		}
		b.WriteString("\n|---|---|" + strings.Repeat("---:|", len(r.Models)) + "\n")
		rows := []struct {
			name string
			get  func(p *PPLResult) float64
		}{
			{"token loss (nats)", func(p *PPLResult) float64 { return p.TokenLoss }},
			{"token perplexity", func(p *PPLResult) float64 { return p.TokenPerplexity }},
			{"word perplexity", func(p *PPLResult) float64 { return p.WordPerplexity }},
			{"bits per byte", func(p *PPLResult) float64 { return p.BitsPerByte }},
		}
		for _, pn := range ppls {
			for _, row := range rows {
				fmt.Fprintf(&b, "| %s | %s |", pn, row.name)
				for _, m := range r.Models {
					if p := m.ppl(pn); p != nil {
						fmt.Fprintf(&b, " %.4f |", row.get(p))
					} else {
						b.WriteString(" — |")
					}
				}
				b.WriteString("\n")
			}
		}
	}
	// MMLU subjects, when present.
	for _, m := range r.Models {
		if t := m.Task("mmlu"); t != nil && len(t.Groups) > 0 {
			b.WriteString("\n## MMLU subjects (acc)\n\n| Subject | n |")
			for _, mm := range r.Models {
				fmt.Fprintf(&b, " %s |", mm.Name)
			}
			b.WriteString("\n|---|---:|" + strings.Repeat("---:|", len(r.Models)) + "\n")
			for gi, g := range t.Groups {
				fmt.Fprintf(&b, "| %s | %d |", strings.ReplaceAll(g.Group, "_", " "), g.N)
				for _, mm := range r.Models {
					mt := mm.Task("mmlu")
					if mt == nil || gi >= len(mt.Groups) {
						b.WriteString(" — |")
						continue
					}
					fmt.Fprintf(&b, " %s |", pct(mt.Groups[gi].Metrics[0]))
				}
				b.WriteString("\n")
			}
			break
		}
	}
	return b.String()
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
