package eval

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

type rougeGolden struct {
	Pairs []map[string]map[string][3]float64 `json:"pairs"`
	Stems map[string]string                  `json:"stems"`
}

func loadRougeGolden(t *testing.T) rougeGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rouge", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g rougeGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRougeGolden compares ROUGE-1/2/L precision, recall and F1 with the
// independent Python implementation of rouge-score's definitions in
// testdata/rouge/ref_rouge.py (regenerate golden.json with it) on every pair
// of pairs.jsonl, with and without stemming.
func TestRougeGolden(t *testing.T) {
	g := loadRougeGolden(t)
	f, err := os.Open(filepath.Join("testdata", "rouge", "pairs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pairs []struct{ Reference, Prediction string }
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p struct{ Reference, Prediction string }
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, p)
	}
	if len(pairs) < 20 || len(pairs) != len(g.Pairs) {
		t.Fatalf("%d pairs, %d golden: regenerate golden.json with ref_rouge.py", len(pairs), len(g.Pairs))
	}
	var worst float64
	for i, p := range pairs {
		for _, mode := range []string{"plain", "stem"} {
			r := RougeOf(p.Reference, p.Prediction, mode == "stem")
			got := map[string]RougeScore{"rouge1": r.R1, "rouge2": r.R2, "rougeL": r.RL}
			for name, want := range g.Pairs[i][mode] {
				s := got[name]
				for k, v := range []float64{s.Precision, s.Recall, s.F} {
					d := math.Abs(v - want[k])
					worst = max(worst, d)
					if d > 1e-9 {
						t.Errorf("pair %d (%q vs %q) %s %s[%d] = %.17g, reference %.17g", i+1, p.Reference, p.Prediction, mode, name, k, v, want[k])
					}
				}
			}
		}
	}
	t.Logf("%d pairs × {plain, stem} × {rouge1, rouge2, rougeL} × {P, R, F}: max |Go − Python| = %g", len(pairs), worst)
}

// TestPorterGolden checks the Porter stemmer word for word against NLTK's
// (through ref_rouge.py) on a vocabulary of ~4000 words of Newton's
// Opticks plus the examples of Porter's paper and NLTK's irregular forms.
func TestPorterGolden(t *testing.T) {
	g := loadRougeGolden(t)
	if len(g.Stems) < 1000 {
		t.Fatalf("only %d stems in golden.json", len(g.Stems))
	}
	bad := 0
	for w, want := range g.Stems {
		if got := PorterStem(w); got != want {
			bad++
			if bad <= 20 {
				t.Errorf("PorterStem(%q) = %q, NLTK %q", w, got, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d stems differ", bad, len(g.Stems))
	}
}

func TestRougeTokens(t *testing.T) {
	cases := []struct {
		reason string
		in     string
		stem   bool
		want   []string
	}{
		{"lower-cased, punctuation splits", "Don't STOP!", false, []string{"don", "t", "stop"}},
		{"non-ASCII letters are separators", "Café São", false, []string{"caf", "s", "o"}},
		{"Python lowers İ to i + combining dot, which splits", "İs", false, []string{"i", "s"}},
		{"punctuation only gives no tokens", "?! ... ---", false, nil},
		{"only tokens longer than 3 are stemmed", "runs running ran", true, []string{"run", "run", "ran"}},
	}
	for _, c := range cases {
		if got := RougeTokens(c.in, c.stem); !slices.Equal(got, c.want) {
			t.Errorf("%s: RougeTokens(%q) = %q, want %q", c.reason, c.in, got, c.want)
		}
	}
}

// FuzzRouge checks the invariants: scores in [0, 1], a text against itself
// scores 1 when it has a token (2 tokens for ROUGE-2), and F1 is symmetric.
func FuzzRouge(f *testing.F) {
	f.Add("The cat sat on the mat.", "the mat")
	f.Add("", "?!")
	f.Add("İstanbul runners", "RUNNING")
	f.Fuzz(func(t *testing.T, a, b string) {
		r := RougeOf(a, b, true)
		for _, s := range []RougeScore{r.R1, r.R2, r.RL} {
			for _, v := range []float64{s.Precision, s.Recall, s.F} {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("score %v outside [0,1] for %q, %q", v, a, b)
				}
			}
		}
		rev := RougeOf(b, a, true)
		if math.Abs(rev.R1.F-r.R1.F) > 1e-12 || math.Abs(rev.RL.F-r.RL.F) > 1e-12 {
			t.Fatalf("F1 not symmetric for %q, %q", a, b)
		}
		self := RougeOf(a, a, false)
		if n := len(RougeTokens(a, false)); n > 0 && (self.R1.F != 1 || self.RL.F != 1 || (n > 1 && self.R2.F != 1)) {
			t.Fatalf("%q against itself: %+v", a, self)
		}
	})
}
