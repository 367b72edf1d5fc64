package eval

import (
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// argmax returns the index of the largest value, the first on ties (as
// numpy's argmax).
func argmax(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// MCOutcome is a scored multiple-choice item.
type MCOutcome struct {
	ID      string    `json:"id"`
	Group   string    `json:"group,omitempty"`
	Gold    int       `json:"gold"`
	LogLik  []float64 `json:"loglik"`
	Pred    int       `json:"pred"`
	PredNrm int       `json:"pred_norm"`
	Acc     float64   `json:"acc"`
	AccNorm float64   `json:"acc_norm"`
}

// ScoreMC computes acc and acc_norm of one item as lm-eval does: acc picks
// the highest log-likelihood; acc_norm divides each by the length of its
// choice text in characters (without the leading delimiter).
func ScoreMC(d Doc, lls []float64) MCOutcome {
	o := MCOutcome{ID: d.ID, Group: d.Group, Gold: d.Gold, LogLik: lls}
	o.Pred = argmax(lls)
	norm := make([]float64, len(lls))
	for i, ll := range lls {
		norm[i] = ll / float64(utf8.RuneCountInString(d.Choices[i]))
	}
	o.PredNrm = argmax(norm)
	if o.Pred == d.Gold {
		o.Acc = 1
	}
	if o.PredNrm == d.Gold {
		o.AccNorm = 1
	}
	return o
}

// Mean and its standard error (lm-eval's mean_stderr: sample standard
// deviation with n−1, over √n); the error is NaN below two values.
func MeanStderr(x []float64) (mean, stderr float64) {
	n := float64(len(x))
	if len(x) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, v := range x {
		mean += v
	}
	mean /= n
	if len(x) < 2 {
		return mean, math.NaN()
	}
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}

// PooledStderr combines sub-task standard errors into the error of the
// size-weighted mean, as lm-eval's pooled_sample_stderr does for groups
// such as mmlu.
func PooledStderr(stderrs []float64, sizes []int) float64 {
	var num float64
	tot, k := 0, 0
	for i, se := range stderrs {
		n := float64(sizes[i])
		if math.IsNaN(se) {
			se = 0
		}
		num += (n - 1) * se * se * n
		tot += sizes[i]
		k++
	}
	if tot-k <= 0 {
		return math.NaN()
	}
	return math.Sqrt(num / float64(tot-k) / float64(tot))
}

// ---- gsm8k answer extraction (lm-eval's filters and exact_match) ----

var (
	strictRe   = regexp.MustCompile(`#### (\-?[0-9\.\,]+)`)
	flexibleRe = regexp.MustCompile(`(-?[$0-9.,]{2,})|(-?[0-9]+)`)
	// regexes_to_ignore of gsm8k's exact_match, applied in order to both
	// prediction and reference.
	ignoreRes = []*regexp.Regexp{
		regexp.MustCompile(`,`),
		regexp.MustCompile(`\$`),
		regexp.MustCompile(`(?s).*#### `),
		regexp.MustCompile(`\.$`),
	}
)

// InvalidAnswer is what an extraction filter yields when nothing matches.
const InvalidAnswer = "[invalid]"

// StrictExtract is gsm8k's strict-match filter: the number after the first
// "#### ".
func StrictExtract(resp string) string {
	m := strictRe.FindStringSubmatch(resp)
	if m == nil {
		return InvalidAnswer
	}
	return strings.TrimSpace(m[1])
}

// FlexibleExtract is gsm8k's flexible-extract filter: the last number-like
// match in the response (digits with $ , . allowed, or a bare integer).
func FlexibleExtract(resp string) string {
	ms := flexibleRe.FindAllStringSubmatch(resp, -1)
	if len(ms) == 0 {
		return InvalidAnswer
	}
	last := ms[len(ms)-1]
	for _, g := range last[1:] {
		if g != "" {
			return strings.TrimSpace(g)
		}
	}
	return InvalidAnswer
}

// normalizeAnswer applies gsm8k's exact_match settings: drop commas, dollar
// signs, everything up to "#### " and one trailing period; ignore case.
func normalizeAnswer(s string) string {
	for _, re := range ignoreRes {
		s = re.ReplaceAllString(s, "")
	}
	return strings.ToLower(s)
}

// ExactMatch compares an extracted prediction with a gsm8k reference answer
// (the full solution ending in "#### N") under gsm8k's exact_match rules.
func ExactMatch(pred, reference string) bool {
	return normalizeAnswer(pred) == normalizeAnswer(reference)
}

// CutAtStop truncates a generation at the first occurrence of each stop
// string in turn (lm-eval splits on every `until` term).
func CutAtStop(s string, until []string) string {
	for _, u := range until {
		if u == "" {
			continue
		}
		if i := strings.Index(s, u); i >= 0 {
			s = s[:i]
		}
	}
	return s
}
