package importance_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
)

// Score a model in 3 independent shards (as a Slurm array or 3 machines
// would) and merge them: the scores are the single run's.
func ExampleMergePartials() {
	cfg, _ := model.SyntheticConfig(model.Llama, 2, 32, 4, 2, 64, 97)
	m, _ := model.New(cfg, model.NewRandomSource(cfg, model.F32, 1), model.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	samples := make([][]int, 7)
	for i := range samples {
		samples[i] = make([]int, 12)
		for j := range samples[i] {
			samples[i][j] = r.IntN(97)
		}
	}
	opt := importance.Options{Aggregation: importance.DefaultAggregation, Batch: 2, BI: true}
	var parts []*importance.Partial
	for shard := 0; shard < 3; shard++ {
		p, err := importance.ComputeShard(context.Background(), m, samples, opt, shard, 3)
		if err != nil {
			panic(err)
		}
		parts = append(parts, p) // each could be saved (p.Save) and loaded (importance.LoadPartial) elsewhere
	}
	merged, err := importance.MergePartials(parts)
	if err != nil {
		panic(err)
	}
	whole, _ := importance.Compute(context.Background(), m, samples, opt)
	worst := 0.0
	for l := range whole.Layers {
		for i, v := range whole.Layers[l].Neurons {
			worst = math.Max(worst, math.Abs(merged.Layers[l].Neurons[i]-v)/v)
		}
	}
	fmt.Println("samples:", merged.Data.Samples, "shards:", len(parts), "within 1e-12:", worst < 1e-12)
	// Output: samples: 7 shards: 3 within 1e-12: true
}
