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

// The device memory per GPU of distilling Minitron-4B from Nemotron-4 15B
// on 8 GPUs (the shapes by name; config.json paths work the same way).
func ExampleNewPlan() {
	teacher, _ := distill.PlanModelConfig("nemotron:nemotron-4-15b")
	student, _ := distill.PlanModelConfig("nemotron:minitron-4b")
	p, err := distill.NewPlan(distill.PlanConfig{Teacher: teacher, Student: student, Seq: 4096, Batch: 1,
		Precision: "bf16", World: 8, Zero: 2, Recompute: true, LogitChunk: 1024, Losses: distill.Losses{KL: 1}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, x := range p.Parts {
		fmt.Printf("%-27s %5.1f GB\n", x.Name, float64(x.Bytes)/1e9)
	}
	fmt.Printf("per GPU %.1f GB\n", float64(p.PerGPUBytes)/1e9)
	// Output:
	// teacher_weights              31.3 GB
	// student_weights               8.4 GB
	// gradients                     2.9 GB
	// master_weights_and_moments    6.4 GB
	// activations                   6.3 GB
	// logit_chunks                  2.7 GB
	// workspace                     0.1 GB
	// per GPU 58.1 GB
}
