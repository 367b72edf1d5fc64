package eval

import (
	"strings"
)

// RougeScore is one ROUGE variant's precision, recall and F1 (fmeasure).
type RougeScore struct {
	Precision float64 `json:"p"`
	Recall    float64 `json:"r"`
	F         float64 `json:"f"`
}

// Rouge holds ROUGE-1, ROUGE-2 and ROUGE-L of one prediction against one
// reference.
type Rouge struct {
	R1 RougeScore `json:"rouge1"`
	R2 RougeScore `json:"rouge2"`
	RL RougeScore `json:"rougeL"`
}

// RougeTokens is rouge-score's DefaultTokenizer: lower-case, every run of
// characters outside [a-z0-9] becomes a space, split on spaces; with stem,
// tokens longer than 3 characters go through the Porter stemmer (NLTK's,
// as rouge-score uses it).
func RougeTokens(s string, stem bool) []string {
	// Python's str.lower is Unicode lower-casing; only a-z and 0-9 survive
	// the next step, so what matters is which characters lower to ASCII
	// letters (A-Z, U+0130 İ → "i̇", U+212A Kelvin → "k").
	s = strings.ToLower(strings.ReplaceAll(s, "\u0130", "i\u0307"))
	var toks []string
	start := -1
	for i := 0; i <= len(s); i++ {
		alnum := i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9')
		if alnum && start < 0 {
			start = i
		} else if !alnum && start >= 0 {
			toks = append(toks, s[start:i])
			start = -1
		}
	}
	if stem {
		for i, t := range toks {
			if len(t) > 3 {
				toks[i] = PorterStem(t)
			}
		}
	}
	// rouge-score drops tokens that are no longer [a-z0-9]+ after
	// stemming; NLTK's stemmer only ever returns lower-case letters and
	// digits from such input, but an empty stem would be dropped.
	out := toks[:0]
	for _, t := range toks {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// RougeOf scores prediction against reference as rouge-score's
// RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem).score
// (reference first there: score(target, prediction)).
func RougeOf(reference, prediction string, stem bool) Rouge {
	ref := RougeTokens(reference, stem)
	pred := RougeTokens(prediction, stem)
	return Rouge{
		R1: ngramScore(ref, pred, 1),
		R2: ngramScore(ref, pred, 2),
		RL: lcsScore(ref, pred),
	}
}

// fmeasure is rouge-score's harmonic mean, 0 when both are 0.
func fmeasure(p, r float64) float64 {
	if p+r > 0 {
		return 2 * p * r / (p + r)
	}
	return 0
}

func ngrams(toks []string, n int) map[string]int {
	m := map[string]int{}
	for i := 0; i+n <= len(toks); i++ {
		// Tokens are [a-z0-9]+, so a space joins them unambiguously.
		m[strings.Join(toks[i:i+n], " ")]++
	}
	return m
}

// ngramScore is rouge-score's _score_ngrams: clipped n-gram overlap over
// the prediction's and the reference's n-gram counts (each at least 1).
func ngramScore(ref, pred []string, n int) RougeScore {
	rg, pg := ngrams(ref, n), ngrams(pred, n)
	inter, rc, pc := 0, 0, 0
	for g, c := range rg {
		inter += min(c, pg[g])
		rc += c
	}
	for _, c := range pg {
		pc += c
	}
	p := float64(inter) / float64(max(pc, 1))
	r := float64(inter) / float64(max(rc, 1))
	return RougeScore{p, r, fmeasure(p, r)}
}

// lcsScore is rouge-score's _score_lcs: longest common subsequence over
// the token sequences; all zero when either is empty.
func lcsScore(ref, pred []string) RougeScore {
	if len(ref) == 0 || len(pred) == 0 {
		return RougeScore{}
	}
	prev := make([]int, len(pred)+1)
	cur := make([]int, len(pred)+1)
	for i := range ref {
		for j := range pred {
			if ref[i] == pred[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev, cur = cur, prev
	}
	l := float64(prev[len(pred)])
	p, r := l/float64(len(pred)), l/float64(len(ref))
	return RougeScore{p, r, fmeasure(p, r)}
}
