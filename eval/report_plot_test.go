package eval

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReportMarkdownAndJSON(t *testing.T) {
	mk := func(name string, params int64, acc float64) *ModelReport {
		return &ModelReport{Name: name, Params: params, NonEmbParams: params / 2, Tasks: []*TaskResult{
			{Task: "hellaswag", N: 10, Metrics: []Metric{{"acc", acc, 0.05}, {"acc_norm", acc + 0.1, 0.04}}},
			{Task: "gsm8k", Shots: 5, N: 10, Metrics: []Metric{{"exact_match,strict-match", 0.2, 0.1}, {"exact_match,flexible-extract", 0.3, 0.1}}},
			{Task: "mmlu", Shots: 5, N: 3, Metrics: []Metric{{"acc", 1.0 / 3, math.NaN()}, {"acc_macro", 0.25, math.NaN()}},
				Groups: []GroupResult{{Group: "toy_a", N: 2, Metrics: []Metric{{"acc", 0.5, 0.5}}}}},
		}}
	}
	r := &Report{Models: []*ModelReport{mk("teacher", 15_630_000_000, 0.6), mk("student", 4_190_000_000, 0.5)}}
	md := r.Markdown()
	for _, want := range []string{
		"| Model | Params | Non-embedding | hellaswag (0-shot) | gsm8k (5-shot) | mmlu (5-shot) |",
		"| teacher | 15.63B | 7.82B | 70.0 ± 4.0 | 20.0 ± 10.0 | 33.3 |",
		"| student | 4.19B | 2.10B | 60.0 ± 4.0 |",
		"| hellaswag | acc | 10 | 60.0 ± 5.0 | 50.0 ± 5.0 | -10.0 |",
		"| toy a | 2 | 50.0 ± 50.0 | 50.0 ± 50.0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON does not read back: %v\n%s", err, b)
	}
	if m, _ := back.Models[1].Task("mmlu").Metric("acc"); !math.IsNaN(m.Stderr) || math.Abs(m.Value-1.0/3) > 1e-12 {
		t.Errorf("NaN stderr must round-trip as null: %+v", m)
	}
}

func writeRun(t *testing.T, dir, body string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadCurveAndPlot(t *testing.T) {
	tmp := t.TempDir()
	var a, b strings.Builder
	a.WriteString(`{"config": {"lr": 0.001}}` + "\n")
	for s := 1; s <= 60; s++ {
		fmt.Fprintf(&a, `{"step": %d, "lr": 0.001, "loss": %.4f, "grad_norm": 1.0}`+"\n", s, 5/math.Sqrt(float64(s)))
		fmt.Fprintf(&b, `{"step": %d, "train_loss": %.4f}`+"\n", s, 4.5/math.Sqrt(float64(s)))
		if s%20 == 0 {
			fmt.Fprintf(&a, `{"step": %d, "val_loss": %.4f}`+"\n", s, 5.2/math.Sqrt(float64(s)))
			fmt.Fprintf(&b, `{"step": %d, "split": "val", "loss": %.4f}`+"\n", s, 4.9/math.Sqrt(float64(s)))
		}
	}
	ra := writeRun(t, filepath.Join(tmp, "width"), a.String())
	rb := writeRun(t, filepath.Join(tmp, "depth"), b.String())
	ca, err := ReadCurve(ra)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ReadCurve(filepath.Join(rb, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ca.Train) != 60 || len(ca.Val) != 3 || ca.Name != "width" {
		t.Errorf("run a: %d train %d val %q", len(ca.Train), len(ca.Val), ca.Name)
	}
	if len(cb.Train) != 60 || len(cb.Val) != 3 || cb.Val[2].X != 60 || cb.Name != "depth" {
		t.Errorf("run b (split-style val lines, file path): %d train %d val %q", len(cb.Train), len(cb.Val), cb.Name)
	}
	out := filepath.Join(tmp, "curves.png")
	if err := PlotCurves([]*Curve{ca, cb}, out, PlotOptions{Title: "test"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w < 800 {
		t.Errorf("image %d px wide", w)
	}

	bad := []struct{ reason, body, want string }{
		{"not JSON", `{"step": 1, "loss": 2}` + "\n" + `step 2 loss 1.9` + "\n", "metrics.jsonl:2: invalid JSON"},
		{"loss without step", `{"loss": 2}` + "\n", "metrics.jsonl:1: a loss without a \"step\""},
		{"non-numeric loss", `{"step": 1, "loss": "high"}` + "\n", "metrics.jsonl:1: \"loss\" is not a number"},
		{"no losses at all", `{"step": 1, "lr": 0.1}` + "\n", "no loss values"},
	}
	for i, c := range bad {
		d := writeRun(t, filepath.Join(tmp, fmt.Sprint("bad", i)), c.body)
		if _, err := ReadCurve(d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.reason, err, c.want)
		}
	}
	if _, err := ReadCurve(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no metrics.jsonl") {
		t.Errorf("empty dir: %v", err)
	}
}
