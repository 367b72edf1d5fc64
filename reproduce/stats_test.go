package reproduce

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		x        []float64
		mean, sd float64 // NaN: undefined
		str      string
		reason   string
	}{
		{[]float64{1, 2, 3}, 2, 1, "2.000 ± 1.000", "sample sd divides by n−1: ((1+0+1)/2)^½ = 1"},
		{[]float64{4.1, 4.1, 4.1}, 4.1, 0, "4.100 ± 0.000", "identical seeds: no spread"},
		{[]float64{3.5}, 3.5, math.NaN(), "3.500", "one seed has no sd; only the mean is shown"},
		{[]float64{2, 4}, 3, math.Sqrt2, "3.000 ± 1.414", "two values: |a−b|/√2"},
	} {
		s := Summarize(tc.x)
		if s.N != len(tc.x) || math.Abs(s.Mean-tc.mean) > 1e-12 {
			t.Errorf("%s: %+v, want mean %v", tc.reason, s, tc.mean)
		}
		if math.IsNaN(tc.sd) != math.IsNaN(s.SD) || (!math.IsNaN(tc.sd) && math.Abs(s.SD-tc.sd) > 1e-12) {
			t.Errorf("%s: sd %v, want %v", tc.reason, s.SD, tc.sd)
		}
		if s.String() != tc.str {
			t.Errorf("%s: %q, want %q", tc.reason, s.String(), tc.str)
		}
	}
}

func TestPairedDiffAndDecide(t *testing.T) {
	for _, tc := range []struct {
		ours, base []float64
		mean, se   float64
		verdict    Verdict
		reason     string
	}{
		// Differences −0.10, −0.12, −0.08: mean −0.10, sd 0.02, se 0.02/√3 = 0.01155.
		{[]float64{3.90, 3.88, 3.92}, []float64{4.00, 4.00, 4.00}, -0.10, 0.02 / math.Sqrt(3), Held, "ours lower by 8.7 standard errors"},
		{[]float64{4.00, 4.00, 4.00}, []float64{3.90, 3.88, 3.92}, 0.10, 0.02 / math.Sqrt(3), NotHeld, "the baseline lower by 8.7 standard errors"},
		// Differences −0.01, +0.01, −0.03: mean −0.01, sd 0.02, se 0.01155: z = −0.87.
		{[]float64{3.99, 4.01, 3.97}, []float64{4.00, 4.00, 4.00}, -0.01, 0.02 / math.Sqrt(3), Inconclusive, "a difference inside 2 standard errors"},
		// Pairing matters: the arms' seeds move together (a shared data
		// order), so the unpaired spread (0.1) is far larger than the
		// spread of the differences (0).
		{[]float64{3.8, 3.9, 4.0}, []float64{3.81, 3.91, 4.01}, -0.01, 0, Held, "a constant difference with no spread is beyond any number of standard errors"},
		{[]float64{4, 4, 4}, []float64{4, 4, 4}, 0, 0, Inconclusive, "identical arms: no difference"},
		// Differences −0.2, −0.2: below MinSeeds.
		{[]float64{3.8, 3.8}, []float64{4.0, 4.0}, -0.2, 0, Inconclusive, "two seeds are too few to decide"},
		// Differences: −0.05, −0.05, −0.05, −0.02, +0.02 → mean −0.03, sd (0.0038/4)^½ = 0.0308, se 0.01378: z = −2.18.
		{[]float64{3.95, 3.95, 3.95, 3.98, 4.02}, []float64{4, 4, 4, 4, 4}, -0.03, math.Sqrt(0.0038/4) / math.Sqrt(5), Held, "just beyond 2 standard errors with five seeds"},
	} {
		p, err := PairedDiff(tc.ours, tc.base)
		if err != nil {
			t.Fatalf("%s: %v", tc.reason, err)
		}
		if p.N != len(tc.ours) || math.Abs(p.Mean-tc.mean) > 1e-9 || math.Abs(p.SE-tc.se) > 1e-9 {
			t.Errorf("%s: %+v, want mean %.5f se %.5f", tc.reason, p, tc.mean, tc.se)
		}
		if v := Decide(p); v != tc.verdict {
			t.Errorf("%s: %s (z %.2f), want %s", tc.reason, v, p.Z(), tc.verdict)
		}
	}
	if _, err := PairedDiff([]float64{1, 2}, []float64{1}); err == nil || !strings.Contains(err.Error(), "one per seed") {
		t.Errorf("unequal seeds: %v, want an error", err)
	}
	if _, err := PairedDiff(nil, nil); err == nil {
		t.Error("no values: no error")
	}
}

func TestPairedZ(t *testing.T) {
	for _, tc := range []struct {
		p      Paired
		want   float64
		reason string
	}{
		{Paired{N: 3, Mean: -0.1, SE: 0.05}, -2, "difference over its standard error"},
		{Paired{N: 3, Mean: 0.1, SE: 0}, math.Inf(1), "no spread: infinitely many standard errors, with the difference's sign"},
		{Paired{N: 3, Mean: 0, SE: 0}, math.NaN(), "no difference and no spread: undefined"},
		{Paired{N: 1, Mean: 0.1, SE: math.NaN()}, math.NaN(), "one seed: undefined"},
	} {
		got := tc.p.Z()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: %v, want %v", tc.reason, got, tc.want)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	for _, tc := range []struct {
		in     any
		want   string
		reason string
	}{
		{Summary{N: 1, Mean: 3.5, SD: math.NaN()}, `{"n":1,"mean":3.5,"sd":null}`, "one seed: the sd is null, not an encoding error"},
		{Summary{N: 3, Mean: 2, SD: 1}, `{"n":3,"mean":2,"sd":1}`, "a defined sd is a number"},
		{Paired{N: 1, Mean: -0.1, SE: math.NaN()}, `{"n":1,"mean":-0.1,"se":null}`, "one pair: the standard error is null"},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: %s (%v), want %s", tc.reason, b, err, tc.want)
		}
	}
	var s Summary
	if err := json.Unmarshal([]byte(`{"n":1,"mean":3.5,"sd":null}`), &s); err != nil || s.N != 1 || s.Mean != 3.5 || !math.IsNaN(s.SD) {
		t.Errorf("null reads back as NaN: %+v (%v)", s, err)
	}
	var p Paired
	if err := json.Unmarshal([]byte(`{"n":3,"mean":-0.1,"se":0.01}`), &p); err != nil || p != (Paired{N: 3, Mean: -0.1, SE: 0.01}) {
		t.Errorf("a paired difference round-trips: %+v (%v)", p, err)
	}
}

func ExampleDecide() {
	// Held-out loss of the distilled student and of its baseline, one
	// value per seed (seed i of both arms saw the same data order).
	ours := []float64{3.912, 3.905, 3.921}
	base := []float64{3.960, 3.949, 3.975}
	p, _ := PairedDiff(ours, base)
	fmt.Printf("ours %s, baseline %s\n", Summarize(ours), Summarize(base))
	fmt.Printf("difference %+.3f ± %.3f (%.1f SE): %s\n", p.Mean, p.SE, p.Z(), Decide(p))
	// Output:
	// ours 3.913 ± 0.008, baseline 3.961 ± 0.013
	// difference -0.049 ± 0.003 (-16.7 SE): held
}
