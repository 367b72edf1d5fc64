package model_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/minitron-dev/minitron/model"
)

func ExampleOpenCheckpoint() {
	ck, err := model.OpenCheckpoint("testdata/golden/nemotron-tiny")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ck.Close()
	info, _ := ck.Info("model.layers.0.self_attn.k_proj.weight")
	w := make([]float32, info.NumElements())
	if err := ck.ReadF32(info.Name, w); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ck.Config().Family, info.DType, info.Shape, len(ck.Names()), "tensors")
	// Output: nemotron F32 [32 64] 24 tensors
}

func ExampleSaveCheckpoint() {
	src, _ := model.OpenCheckpoint("testdata/golden/llama-tiny")
	defer src.Close()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "llama-bf16")
	// Re-save in bf16, in shards of at most 100 KB of tensor data.
	err := model.SaveCheckpoint(out, src.Config(), src, model.SaveOptions{DType: model.BF16, ShardBytes: 100 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	ck, _ := model.OpenCheckpoint(out)
	defer ck.Close()
	fmt.Println(len(ck.Files()), "shards,", ck.DTypeCounts()[model.BF16], "bf16 tensors,", ck.Config().TorchDType)
	// Output: 3 shards, 21 bf16 tensors, bfloat16
}
