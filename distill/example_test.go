package distill_test

import (
	"context"
	"fmt"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
)

// Training a tiny llama from random initialisation on an in-memory token
// stream, without writing any files (Out empty), as a search candidate
// would be trained.
func ExampleRun() {
	cfg, _ := model.SyntheticConfig(model.Llama, 1, 16, 2, 1, 32, 32)
	doc := make([]int32, 400)
	for i := range doc {
		doc[i] = int32(i % 7)
	}
	train, _ := data.NewGPTSampler(data.MemorySource{doc}, data.SamplerOptions{SeqLen: 16, Seed: 1})
	val, _ := data.NewGPTSampler(data.MemorySource{doc}, data.SamplerOptions{SeqLen: 16, Seed: 2})
	res, err := distill.Run(context.Background(), distill.Config{
		StudentConfig: cfg, RandomInit: true, Train: train, ValSampler: val, ValBatches: 2,
		SeqLen: 16, MicroBatch: 4, Steps: 60, LR: 1e-2, MinLR: 1e-3, Warmup: 5, Seed: 1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Steps, res.ValLoss < 1.0)
	// Output: 60 true
}
