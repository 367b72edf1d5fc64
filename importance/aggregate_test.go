package importance

import (
	"math"
	"testing"
)

// Two samples of two tokens over two channels; magnitudes per channel are
// sample 0: c0 {1,3}, c1 {2,0}; sample 1: c0 {0,2}, c1 {4,4}.
var aggInput = []float32{
	1, -2, 3, 0, // sample 0
	0, 4, 2, -4, // sample 1
}

func TestAccumulatorNineAggregations(t *testing.T) {
	s10, s32 := math.Sqrt(10), math.Sqrt(32)
	cases := []struct {
		agg    Aggregation
		want   [2]float64
		reason string
	}{
		{Aggregation{BatchL2, SeqMean}, [2]float64{math.Sqrt(5), math.Sqrt(17)}, "per-sample means {2,1},{1,4}; sqrt of sum of squares"},
		{Aggregation{BatchMean, SeqMean}, [2]float64{1.5, 2.5}, "mean of per-sample means"},
		{Aggregation{BatchVar, SeqMean}, [2]float64{0.25, 2.25}, "population variance of per-sample means"},
		{Aggregation{BatchL2, SeqL2}, [2]float64{math.Sqrt(14), 6}, "per-sample L2 {√10,2},{2,√32}"},
		{Aggregation{BatchMean, SeqL2}, [2]float64{(s10 + 2) / 2, (2 + s32) / 2}, "mean of per-sample L2"},
		{Aggregation{BatchVar, SeqL2}, [2]float64{7 - (s10+2)*(s10+2)/4, 18 - (2+s32)*(2+s32)/4}, "variance of per-sample L2"},
		{Aggregation{BatchL2, SeqVar}, [2]float64{math.Sqrt(2), 1}, "per-sample variances {1,1},{1,0}"},
		{Aggregation{BatchMean, SeqVar}, [2]float64{1, 0.5}, "mean of per-sample variances"},
		{Aggregation{BatchVar, SeqVar}, [2]float64{0, 0.25}, "variance of per-sample variances"},
	}
	for _, c := range cases {
		a := NewAccumulator(2, c.agg)
		a.AddBatch(aggInput, 2, 2)
		got := a.Scores()
		for i := range got {
			if math.Abs(got[i]-c.want[i]) > 1e-12 {
				t.Errorf("%v channel %d = %v, want %v (%s)", c.agg, i, got[i], c.want[i], c.reason)
			}
		}
	}
}

func TestAccumulatorStreamingEqualsOneShot(t *testing.T) {
	for _, agg := range allAggregations() {
		whole := NewAccumulator(2, agg)
		whole.AddBatch(aggInput, 2, 2)
		a, b := NewAccumulator(2, agg), NewAccumulator(2, agg)
		a.AddBatch(aggInput[:4], 1, 2)
		b.AddBatch(aggInput[4:], 1, 2)
		a.Merge(b)
		w, g := whole.Scores(), a.Scores()
		for i := range w {
			if math.Abs(w[i]-g[i]) > 1e-12 {
				t.Errorf("%v: merged %v != one-shot %v", agg, g, w)
			}
		}
		if a.Samples() != 2 {
			t.Errorf("samples = %d, want 2", a.Samples())
		}
	}
}

func TestHeadNorms(t *testing.T) {
	// one row, two heads of dim 2: (3,4) and (0,-1)
	got := HeadNorms(nil, []float32{3, 4, 0, -1}, 1, 2, 2)
	if got[0] != 5 || got[1] != 1 {
		t.Fatalf("HeadNorms = %v, want [5 1]", got)
	}
}

func TestParseAggregation(t *testing.T) {
	if _, err := ParseAggregation("L2", "Mean"); err != nil {
		t.Errorf("L2/Mean should parse case-insensitively: %v", err)
	}
	if _, err := ParseAggregation("max", "mean"); err == nil {
		t.Error("batch=max should be rejected")
	}
	if _, err := ParseAggregation("l2", "median"); err == nil {
		t.Error("seq=median should be rejected")
	}
}

func allAggregations() []Aggregation {
	var out []Aggregation
	for _, b := range []BatchAgg{BatchL2, BatchMean, BatchVar} {
		for _, s := range []SeqAgg{SeqMean, SeqL2, SeqVar} {
			out = append(out, Aggregation{b, s})
		}
	}
	return out
}
