package importance

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// shardRun scores shard i of n (or everything for n == 0) of the fixture.
func shardRun(t *testing.T, dir, prefix, out string, i, n int) *Result {
	t.Helper()
	res, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: out,
		Samples: 7, SeqLen: 12, Batch: 2, Seed: 5, Aggregation: DefaultAggregation, BI: true, Loss: true, LossSamples: 5,
		BlockK: []int{1, 2}, Shard: i, Shards: n, Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// relDiff is the largest |a-b|/max(|b|, 1e-300) over the vectors.
func relDiff(a, b []float64) float64 {
	var d float64
	for i := range b {
		d = math.Max(d, math.Abs(a[i]-b[i])/math.Max(math.Abs(b[i]), 1e-300))
	}
	return d
}

// The shards of a run merge into the single run's scores: the sample
// counts exactly, and every score (each a reduction of float64 sums that
// the merge adds in another order) within 1e-12 relative.
func TestShardsMergeToTheSingleRun(t *testing.T) {
	dir, prefix := runFixture(t)
	tmp := t.TempDir()
	whole := shardRun(t, dir, prefix, filepath.Join(tmp, "all.json"), 0, 0).Scores
	for _, n := range []int{2, 3} {
		var files []string
		for i := 0; i < n; i++ {
			f := filepath.Join(tmp, fmt.Sprintf("part-%d-of-%d.json", i, n))
			shardRun(t, dir, prefix, f, i, n)
			files = append(files, f)
		}
		// merged from the files (in reverse order: the order given does not matter)
		var ps []*Partial
		for i := len(files) - 1; i >= 0; i-- {
			p, err := LoadPartial(files[i])
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		got, err := MergePartials(ps)
		if err != nil {
			t.Fatal(err)
		}
		if got.Data != whole.Data || got.Depth.LossSamples != whole.Depth.LossSamples || got.Depth.LossData != whole.Depth.LossData {
			t.Fatalf("%d shards: data %+v loss samples %d (%s), single run %+v %d (%s)", n, got.Data, got.Depth.LossSamples,
				got.Depth.LossData, whole.Data, whole.Depth.LossSamples, whole.Depth.LossData)
		}
		var samples int
		for _, p := range ps {
			samples += p.Heads[0].Samples
		}
		if samples != whole.Data.Samples {
			t.Fatalf("%d shards counted %d samples, want %d", n, samples, whole.Data.Samples)
		}
		const tol = 1e-12
		worst := relDiff(got.Channels, whole.Channels)
		for l := range whole.Layers {
			worst = math.Max(worst, relDiff(got.Layers[l].Heads, whole.Layers[l].Heads))
			worst = math.Max(worst, relDiff(got.Layers[l].Groups, whole.Layers[l].Groups))
			worst = math.Max(worst, relDiff(got.Layers[l].Neurons, whole.Layers[l].Neurons))
		}
		worst = math.Max(worst, relDiff(got.Depth.BI, whole.Depth.BI))
		worst = math.Max(worst, relDiff(got.Depth.DropLoss, whole.Depth.DropLoss))
		worst = math.Max(worst, relDiff([]float64{got.Depth.BaseLoss}, []float64{whole.Depth.BaseLoss}))
		if worst > tol {
			t.Errorf("%d shards: scores differ from the single run's by %g relative (tolerance %g)", n, worst, tol)
		}
		if len(got.Depth.Blocks) != len(whole.Depth.Blocks) {
			t.Fatalf("%d shards: %d blocks, want %d", n, len(got.Depth.Blocks), len(whole.Depth.Blocks))
		}
		for i, b := range whole.Depth.Blocks {
			g := got.Depth.Blocks[i]
			if g.K != b.K || g.Start != b.Start || g.Metric != b.Metric || math.Abs(g.Value-b.Value) > tol*math.Abs(b.Value) {
				t.Errorf("%d shards: block %+v, single run %+v", n, g, b)
			}
		}
		t.Logf("%d shards: largest relative difference from the single run %.2g", n, worst)
	}
}

func TestMergeRefusals(t *testing.T) {
	dir, prefix := runFixture(t)
	tmp := t.TempDir()
	load := func(i, n int, seed uint64) *Partial {
		f := filepath.Join(tmp, fmt.Sprintf("p%d-%d-%d.json", i, n, seed))
		_, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: f, Samples: 4, SeqLen: 8, Batch: 2,
			Seed: seed, Aggregation: DefaultAggregation, Shard: i, Shards: n})
		if err != nil {
			t.Fatal(err)
		}
		p, err := LoadPartial(f)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a0, a1, b1 := load(0, 2, 1), load(1, 2, 1), load(1, 2, 2)
	c0 := load(0, 3, 1)
	cases := []struct {
		ps     []*Partial
		want   string
		reason string
	}{
		{[]*Partial{a0}, "2 shards", "a shard missing"},
		{[]*Partial{a0, a0}, "missing (or given twice)", "the same shard twice"},
		{[]*Partial{a0, b1}, "another run", "shards of runs with other seeds"},
		{[]*Partial{c0, a0, a1}, "another run", "shards of runs split in other counts"},
	}
	for _, c := range cases {
		_, err := MergePartials(c.ps)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.reason, err, c.want)
		}
	}
	if _, err := ParsePartial([]byte(`{"format":"minitron-importance-partial/1","shard":2,"of":2}`)); err == nil {
		t.Error("a shard index outside its count was accepted")
	}
}

// A partial statistics file from outside is refused with an error, never a
// panic, and one that parses merges (as the only shard) without a panic.
func FuzzParsePartial(f *testing.F) {
	f.Add([]byte(`{"format":"minitron-importance-partial/1","shard":0,"of":1,"samples_lo":0,"samples_hi":1,
		"shape":{"layers":1,"hidden":1,"heads":1,"kv_heads":1,"ffn":1},"aggregation":{"batch":"l2","seq":"mean"},"mlp_point":"post",
		"data":{"samples":1,"seq_len":2,"seed":0,"tokens":2},
		"heads":[{"samples":1,"sum":[1],"sum_sq":[1]}],"neurons":[{"samples":1,"sum":[1],"sum_sq":[1]}],
		"norms":[[{"samples":1,"sum":[1],"sum_sq":[1]},{"samples":1,"sum":[1],"sum_sq":[1]}]],
		"loss":{"samples":1,"seq_len":2,"base":1,"drop_one":[2]}}`))
	f.Add([]byte(`{"format":"minitron-importance-partial/1","shard":0,"of":1,"shape":{"layers":2,"hidden":1,"heads":2,"kv_heads":1,"ffn":1},"block_k":[1]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePartial(b)
		if err != nil {
			return
		}
		MergePartials([]*Partial{p})
	})
}
