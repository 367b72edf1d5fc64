package eval

import (
	"slices"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func TestBucketLen(t *testing.T) {
	for _, c := range []struct {
		n, capacity, want int
		reason            string
	}{
		{1, 4096, 16, "short rows round up to 16"},
		{16, 4096, 16, "a multiple of 16 stays"},
		{17, 4096, 32, "next multiple of 16"},
		{130, 4096, 160, "nextPow2(130)=256: steps of 32"},
		{1000, 4096, 1024, "steps of 128"},
		{1025, 4096, 1280, "steps of 256: at most 1/8 padding"},
		{1025, 1100, 1100, "never beyond the capacity"},
		{10, 12, 12, "capacity below 16"},
	} {
		if got := bucketLen(c.n, c.capacity); got != c.want {
			t.Errorf("%s: bucketLen(%d, %d) = %d, want %d", c.reason, c.n, c.capacity, got, c.want)
		}
	}
}

func TestScoreRowsChecks(t *testing.T) {
	for _, c := range []struct {
		reqs   []ScoreRequest
		want   string
		reason string
	}{
		{[]ScoreRequest{{Context: nil, Continuations: [][]int{{1}}}}, "empty context", "as ModelLM"},
		{[]ScoreRequest{{Context: []int{1}, Continuations: [][]int{{}}}}, "empty continuation", "as ModelLM"},
		{[]ScoreRequest{{Context: []int{1, 2, 3}, Continuations: [][]int{{1, 2, 3, 4, 5, 6}}}}, "8 tokens exceed the 7-token window", "window of context+longest-1"},
		{[]ScoreRequest{{Context: []int{1, 99}, Continuations: [][]int{{1}}}}, "token id 99 outside the vocabulary [0,50)", "context id"},
		{[]ScoreRequest{{Context: []int{1}, Continuations: [][]int{{2, 50}}}}, "token id 50 outside", "last continuation id (only a target)"},
	} {
		_, err := scoreRows(c.reqs, 7, 50)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.reason, err, c.want)
		}
	}
}

// Rows, passes and padded inputs of a small mixed batch, checked by hand.
func TestPlanPasses(t *testing.T) {
	reqs := []ScoreRequest{
		{Context: []int{1, 2, 3}, Continuations: [][]int{{4}, {5, 6}}},
		{Context: make([]int, 20), Continuations: [][]int{{7, 8}}},
		{Context: []int{9}, Continuations: [][]int{{10, 11, 12}}},
	}
	rows, err := scoreRows(reqs, 64, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || !slices.Equal(rows[1].ids, []int32{1, 2, 3, 5}) || rows[1].first != 2 || rows[2].first != 19 {
		t.Fatalf("rows %+v", rows)
	}
	// Lengths 3, 4, 21, 3: the 21-token row has its own bucket (32), the
	// others share 16 and split at maxRows 2, longest first.
	passes := planPasses(rows, 2, 64)
	want := []devicePass{{32, []int{2}}, {16, []int{1, 0}}, {16, []int{3}}}
	if len(passes) != len(want) {
		t.Fatalf("passes %+v, want %+v", passes, want)
	}
	for i := range want {
		if passes[i].T != want[i].T || !slices.Equal(passes[i].rows, want[i].rows) {
			t.Errorf("pass %d: %+v, want %+v", i, passes[i], want[i])
		}
	}
	ids, tg := passInputs(rows, passes[1])
	wantIDs := []int32{1, 2, 3, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	wantTg := []int32{-1, -1, 5, 6, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}
	if !slices.Equal(ids[0], wantIDs) || !slices.Equal(tg[0], wantTg) {
		t.Errorf("row 1 padded: ids %v targets %v", ids[0], tg[0])
	}
	if !slices.Equal(tg[1][:4], []int32{-1, -1, 4, -1}) {
		t.Errorf("row 0 targets %v: only the continuation position predicts", tg[1])
	}
}

func TestAutoRows(t *testing.T) {
	small, err := model.SyntheticConfig(model.Llama, 2, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	big, err := model.SyntheticConfig(model.Nemotron, 32, 3072, 24, 8, 9216, 256000)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg    *model.Config
		seq    int
		budget int64
		bf16   bool
		lo, hi int
		reason string
	}{
		{small, 64, 0, false, 64, 64, "a tiny model is capped at 64 rows"},
		{big, 4096, 0, false, 1, 1, "a 4B model at 4096 tokens: one row (never 0)"},
		{big, 128, 0, false, 32, 64, "shorter rows: more of them"},
		{big, 128, 1 << 20, false, 1, 1, "a budget below one row still gives one"},
		{big, 128, 0, true, 32, 64, "bf16 weights: the bf16 input copies are small next to the logits"},
	} {
		if got := autoRows(c.cfg, c.seq, c.budget, c.bf16); got < c.lo || got > c.hi {
			t.Errorf("%s: autoRows = %d, want in [%d, %d]", c.reason, got, c.lo, c.hi)
		}
	}
	// the bf16 copies cost room: never more rows than without
	for _, seq := range []int{128, 512, 2048} {
		if f, b := autoRows(big, seq, 2<<30, false), autoRows(big, seq, 2<<30, true); b > f {
			t.Errorf("seq %d: %d rows with bf16 weights, %d without", seq, b, f)
		}
	}
}
