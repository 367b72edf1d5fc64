package reproduce

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/eval"
)

// Summary is one arm's measurement over its seeds.
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	// SD is the sample standard deviation (n−1); NaN below two values.
	SD float64 `json:"sd"`
}

// Summarize is the mean and sample standard deviation of x (the mean and
// its standard error come from eval.MeanStderr, the one home of that
// formula; SD = SE·√n).
func Summarize(x []float64) Summary {
	m, se := eval.MeanStderr(x)
	return Summary{N: len(x), Mean: m, SD: se * math.Sqrt(float64(len(x)))}
}

// String renders "mean ± sd" (just the mean for one value).
func (s Summary) String() string { return s.format("%.3f") }

// format renders "mean ± sd" with verb for each number (just the mean
// where sd is undefined).
func (s Summary) format(verb string) string {
	if s.N < 2 || math.IsNaN(s.SD) {
		return fmt.Sprintf(verb, s.Mean)
	}
	return fmt.Sprintf(verb+" ± "+verb, s.Mean, s.SD)
}

// Paired is the difference ours − baseline over seeds that both arms ran
// with (the same seed: the same data order, so the difference cancels the
// noise they share).
type Paired struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"` // mean of the per-seed differences
	SE   float64 `json:"se"`   // its standard error, sd/√n (NaN below two pairs)
}

// PairedDiff pairs ours[i] with base[i]; the slices must have the same
// length (one value per seed).
func PairedDiff(ours, base []float64) (Paired, error) {
	if len(ours) != len(base) {
		return Paired{}, fmt.Errorf("paired difference of %d and %d values: want one per seed in both", len(ours), len(base))
	}
	if len(ours) == 0 {
		return Paired{}, fmt.Errorf("paired difference of no values")
	}
	d := make([]float64, len(ours))
	for i := range ours {
		d[i] = ours[i] - base[i]
	}
	m, se := eval.MeanStderr(d)
	return Paired{N: len(d), Mean: m, SE: se}, nil
}

// Z is the difference in standard errors (±Inf for a non-zero difference
// with zero spread, NaN when undefined).
func (p Paired) Z() float64 {
	if math.IsNaN(p.SE) {
		return math.NaN()
	}
	if p.SE == 0 {
		if p.Mean == 0 {
			return math.NaN()
		}
		return math.Copysign(math.Inf(1), p.Mean)
	}
	return p.Mean / p.SE
}

// Verdict of a claim.
type Verdict string

const (
	Held         Verdict = "held"
	NotHeld      Verdict = "not held"
	Inconclusive Verdict = "inconclusive"
)

// VerdictSE is the rule's threshold in standard errors.
const VerdictSE = 2.0

// MinSeeds is the fewest paired seeds a claim is decided on; fewer is
// inconclusive whatever the difference.
const MinSeeds = 3

// VerdictRule is the rule Decide applies, in words (the report states it).
var VerdictRule = fmt.Sprintf("a claim is **held** when the mean paired difference (ours − baseline, in nats of held-out Go loss) is below −%g standard errors, "+
	"**not held** when it is above +%g standard errors (the baseline is better), and **inconclusive** otherwise or with fewer than %d seeds",
	VerdictSE, VerdictSE, MinSeeds)

// Decide applies the rule to a paired difference where lower is better
// for ours (a loss).
func Decide(p Paired) Verdict {
	if p.N < MinSeeds || math.IsNaN(p.SE) || math.IsNaN(p.Mean) {
		return Inconclusive
	}
	switch {
	case p.Mean < -VerdictSE*p.SE:
		return Held
	case p.Mean > VerdictSE*p.SE:
		return NotHeld
	}
	return Inconclusive
}

// JSON has no NaN: an undefined sd or standard error (one seed) is
// written as null and read back as NaN.

type jsonSummary struct {
	N    int      `json:"n"`
	Mean *float64 `json:"mean"`
	SD   *float64 `json:"sd"`
}

type jsonPaired struct {
	N    int      `json:"n"`
	Mean *float64 `json:"mean"`
	SE   *float64 `json:"se"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonSummary{N: s.N, Mean: finite(s.Mean), SD: finite(s.SD)})
}

func (s *Summary) UnmarshalJSON(b []byte) error {
	var j jsonSummary
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Summary{N: j.N, Mean: orNaN(j.Mean), SD: orNaN(j.SD)}
	return nil
}

func (p Paired) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonPaired{N: p.N, Mean: finite(p.Mean), SE: finite(p.SE)})
}

func (p *Paired) UnmarshalJSON(b []byte) error {
	var j jsonPaired
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = Paired{N: j.N, Mean: orNaN(j.Mean), SE: orNaN(j.SE)}
	return nil
}
