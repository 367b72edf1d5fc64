package prune

import (
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func TestCandidatesWithinBudget(t *testing.T) {
	teacher, _ := model.LoadConfig("testdata/nemotron-4-15b/config.json")
	budget := int64(8.27e9)
	cands, err := Candidates(teacher, budget, 0.05, SearchSpace{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) < 8 {
		t.Fatalf("only %d candidates", len(cands))
	}
	found8B := false
	for i, c := range cands {
		if p := c.Target.Params(teacher); p != c.Params || float64(p) < 0.95*float64(budget) || float64(p) > 1.05*float64(budget) {
			t.Errorf("%s: %d params, outside ±5%% of %d", c.Name, p, budget)
		}
		if c.Target.Heads%c.Target.KVHeads != 0 {
			t.Errorf("%s: heads not a multiple of kv heads", c.Name)
		}
		if i > 0 && abs64(c.Params-budget) < abs64(cands[i-1].Params-budget) {
			t.Errorf("candidates not sorted by distance to the budget at %d", i)
		}
		if c.Target == (Target{32, 4096, 48, 8, 16384}) {
			found8B = true
		}
	}
	if !found8B {
		t.Error("Minitron-8B's shape is not among the candidates for 8.27B")
	}
	if _, err := Candidates(teacher, 20e9, 0.05, SearchSpace{}, 0); err == nil {
		t.Error("a budget above the teacher should fail")
	}
	if _, err := Candidates(teacher, 1e8, 0.05, SearchSpace{}, 0); err == nil || !strings.Contains(err.Error(), "no architecture") {
		t.Errorf("a budget below the grid should say so, got %v", err)
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
