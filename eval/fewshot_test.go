package eval

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type fewshotGolden struct {
	Cases []struct {
		Name      string  `json:"name"`
		Pool      int     `json:"pool"`
		Shots     int     `json:"shots"`
		SameSplit bool    `json:"same_split"`
		Docs      int     `json:"docs"`
		Chosen    [][]int `json:"chosen"`
	} `json:"cases"`
	Raw struct {
		Random       []float64 `json:"random"`
		Bits7        []uint64  `json:"getrandbits_7"`
		Bits40       []uint64  `json:"getrandbits_40"`
		Shuffle20    []int     `json:"shuffle_20"`
		BigSeed      []float64 `json:"seed_2_40_plus_5_random"`
		NegativeSeed []float64 `json:"seed_minus_1234_random"`
	} `json:"raw"`
}

func loadFewshotGolden(t *testing.T) fewshotGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fewshot", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g fewshotGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestPyRandom checks the Mersenne Twister and its methods against
// CPython's random module (testdata/fewshot/ref_fewshot.py).
func TestPyRandom(t *testing.T) {
	g := loadFewshotGolden(t)
	r := NewPyRandom(1234)
	for i, want := range g.Raw.Random {
		if got := r.Random(); got != want {
			t.Errorf("random() #%d = %.17g, CPython %.17g", i, got, want)
		}
	}
	for i, want := range g.Raw.Bits7 {
		if got := r.GetRandBits(7); got != want {
			t.Errorf("getrandbits(7) #%d = %d, CPython %d", i, got, want)
		}
	}
	for i, want := range g.Raw.Bits40 {
		if got := r.GetRandBits(40); got != want {
			t.Errorf("getrandbits(40) #%d = %d, CPython %d", i, got, want)
		}
	}
	xs := make([]int, 20)
	for i := range xs {
		xs[i] = i
	}
	r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	if !slices.Equal(xs, g.Raw.Shuffle20) {
		t.Errorf("shuffle: %v, CPython %v", xs, g.Raw.Shuffle20)
	}
	for _, c := range []struct {
		reason string
		seed   int64
		want   []float64
	}{
		{"a seed of two 32-bit words", 1<<40 + 5, g.Raw.BigSeed},
		{"a negative seed seeds as its absolute value", -1234, g.Raw.NegativeSeed},
	} {
		r := NewPyRandom(c.seed)
		for i, want := range c.want {
			if got := r.Random(); got != want {
				t.Errorf("%s: random() #%d = %.17g, CPython %.17g", c.reason, i, got, want)
			}
		}
	}
}

// TestFewShotSampler draws examples for synthetic pools and compares the
// chosen pool indices with lm-eval's sampler run on Python's random.
func TestFewShotSampler(t *testing.T) {
	g := loadFewshotGolden(t)
	for _, c := range g.Cases {
		pool := make([]Doc, c.Pool)
		for i := range pool {
			pool[i] = Doc{ID: fmt.Sprintf("pool:%d", i), Text: fmt.Sprintf("example %d", i)}
		}
		docs := make([]Doc, c.Docs)
		for i := range docs {
			docs[i] = Doc{ID: fmt.Sprintf("test:%d", i), Text: fmt.Sprintf("item %d", i)}
		}
		if c.SameSplit {
			docs = pool[:c.Docs]
		}
		tk := &Task{Name: "synthetic", Docs: docs, Shots: c.Shots, fewshot: map[string][]Doc{"": pool}, fewshotFromDocs: c.SameSplit}
		if err := tk.drawExamples(SamplerRandom, 1234); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for i, d := range docs {
			var got []int
			for _, ex := range tk.examples(d) {
				n, _ := strconv.Atoi(strings.TrimPrefix(ex.ID, "pool:"))
				got = append(got, n)
			}
			if !slices.Equal(got, c.Chosen[i]) {
				t.Errorf("%s, item %d: chose %v, lm-eval %v", c.Name, i, got, c.Chosen[i])
			}
		}
	}
}

// TestFewShotLoadTask: through LoadTask, gsm8k's examples are lm-eval's
// random draws (seed 1234) from train.jsonl, and first_n stays available.
func TestFewShotLoadTask(t *testing.T) {
	g := loadFewshotGolden(t)
	c := g.Cases[len(g.Cases)-1]
	tk := mustLoad(t, "gsm8k", fixture("gsm8k", "test.jsonl"), TaskOptions{Shots: 3})
	if tk.Sampler != SamplerRandom || len(tk.Docs) != c.Docs {
		t.Fatalf("sampler %q, %d docs; want %q and %d", tk.Sampler, len(tk.Docs), SamplerRandom, c.Docs)
	}
	for i, d := range tk.Docs {
		var got []int
		for _, ex := range tk.examples(d) {
			_, line, _ := strings.Cut(ex.ID, "train.jsonl:")
			n, _ := strconv.Atoi(line)
			got = append(got, n-1)
		}
		if !slices.Equal(got, c.Chosen[i]) {
			t.Errorf("item %d: chose train lines (0-based) %v, lm-eval %v", i, got, c.Chosen[i])
		}
	}
	if tk.samplerUsed() != SamplerRandom || mustLoad(t, "gsm8k", fixture("gsm8k", "test.jsonl"), TaskOptions{Shots: 0}).samplerUsed() != "" {
		t.Errorf("reports name the sampler only with few-shot examples")
	}
	first := mustLoad(t, "gsm8k", fixture("gsm8k", "test.jsonl"), TaskOptions{Shots: 3, FewShotSampler: SamplerFirstN})
	if ex := first.examples(first.Docs[0]); len(ex) != 3 || !strings.HasSuffix(ex[0].ID, "train.jsonl:1") || !strings.HasSuffix(ex[2].ID, "train.jsonl:3") {
		t.Errorf("first_n: %v", ex)
	}
	mm := mustLoad(t, "mmlu", fixture("mmlu"), TaskOptions{Shots: 2})
	if mm.Sampler != SamplerFirstN {
		t.Errorf("mmlu's default sampler is %q; lm-eval's mmlu uses first_n", mm.Sampler)
	}
	if _, err := LoadTask("gsm8k", fixture("gsm8k", "test.jsonl"), TaskOptions{Shots: 3, FewShotSampler: "bogus"}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown sampler: %v", err)
	}
}

// TestTrainSibling: without FewShotPath the examples come from the train
// split beside the evaluated file, as lm-eval draws them; one example per
// item from a separate split needs no extra draw.
func TestTrainSibling(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(fixture("arc_easy.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		reason, test, train string
	}{
		{"AI2's file names", "ARC-Challenge-Test.jsonl", "ARC-Challenge-Train.jsonl"},
		{"hellaswag-style val → train", "arc_val.jsonl", "arc_train.jsonl"},
		{"a plain train.jsonl", "test.jsonl", "train.jsonl"},
	}
	for _, c := range cases {
		d := filepath.Join(dir, strings.TrimSuffix(c.test, ".jsonl"))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// The train items differ from the test items: lm-eval also drops
		// an example equal in content to the item.
		train := strings.ReplaceAll(string(src), `"stem": "`, `"stem": "Train: `)
		if err := os.WriteFile(filepath.Join(d, c.test), src, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, c.train), []byte(train), 0o644); err != nil {
			t.Fatal(err)
		}
		tk := mustLoad(t, "arc_challenge", filepath.Join(d, c.test), TaskOptions{Shots: 2})
		ex := tk.examples(tk.Docs[0])
		if len(ex) != 2 || !strings.Contains(ex[0].ID, c.train) || tk.fewshotFromDocs {
			t.Errorf("%s: examples %v, want them from %s", c.reason, ex, c.train)
		}
	}
	if tk := mustLoad(t, "arc_easy", fixture("arc_easy.jsonl"), TaskOptions{Shots: 1}); !tk.fewshotFromDocs {
		t.Errorf("without a train file the evaluated file is the pool")
	}
}
