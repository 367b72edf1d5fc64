package main

import (
	"fmt"
	"strings"

	"github.com/minitron-dev/minitron/eval"
	"github.com/minitron-dev/minitron/model"
)

// deviceHelp is the --device flag's help on the eval commands.
const deviceHelp = "cpu, or cuda (GPU 0; needs the CUDA build, make build-cuda)"

// parseDevice reads a --device flag: whether it asks for the GPU. In a
// binary without CUDA, cuda is an error naming the build to use, given
// before any model is loaded.
func parseDevice(dev string) (useCUDA bool, err error) {
	switch strings.ToLower(dev) {
	case "", "cpu":
		return false, nil
	case "cuda":
		return true, eval.DeviceBuilt()
	}
	return false, fmt.Errorf("--device %q: want cpu or cuda", dev)
}

// deviceWeights is the --weights mode to load a model in: on the GPU the
// weights are read once from the checkpoint onto the device, so "auto"
// maps the file (streaming) instead of keeping an f32 copy in RAM.
func deviceWeights(weights string, useCUDA bool) string {
	if useCUDA && (weights == "" || weights == "auto") {
		return "streaming"
	}
	return weights
}

// deviceScoreBatch is how many requests (windows, contexts) the eval
// commands hand the device LM per Score call: enough to fill its passes.
const deviceScoreBatch = 64

// bf16Help is the --bf16 flag's help on the inference commands.
const bf16Help = "with --device cuda: keep the weight matrices (linear layers, embedding) on the GPU in bf16 only (half their f32 memory; bf16 products, f32 accumulation)"

// checkBF16 refuses --bf16 off the GPU, where the forward pass is f32.
func checkBF16(bf16, useCUDA bool) error {
	if bf16 && !useCUDA {
		return fmt.Errorf("--bf16 needs --device cuda (the CPU forward pass runs in f32)")
	}
	return nil
}

// noTF32Help is the --no-tf32 flag's help.
const noTF32Help = "with --device cuda: full f32 matrix products (no TF32 rounding of their inputs; slower, closer to the CPU)"

// evalLMOptions choose the LM of an eval command.
type evalLMOptions struct {
	CUDA, NoTF32 bool
	BF16         bool  // device: bf16-only weight matrices
	MaxLen       int   // window; 0: the config's
	Seq          int   // the device's sequence capacity when the longest input is known; 0: grow on demand
	Batch        int   // CPU: concurrent requests; device: rows a pass (0: sized to memory)
	EOS          []int // nil: the model's
}

// evalLM is the LM the eval commands score with: m on the CPU (ModelLM) or
// on GPU 0 (eval.DeviceLM), and how many requests to hand it per Score
// call. closeLM frees the device (a no-op on the CPU).
func evalLM(m *model.Model, o evalLMOptions) (lm eval.LM, scoreBatch int, closeLM func(), err error) {
	if !o.CUDA {
		return &eval.ModelLM{M: m, MaxLen: o.MaxLen, Workers: o.Batch, EOS: o.EOS}, max(o.Batch, 1), func() {}, nil
	}
	d, err := eval.NewDeviceLM(m, eval.DeviceOptions{MaxLen: o.MaxLen, Seq: o.Seq, Rows: o.Batch, EOS: o.EOS, NoTF32: o.NoTF32, BF16: o.BF16})
	if err != nil {
		return nil, 0, nil, err
	}
	return d, max(o.Batch, deviceScoreBatch), func() { d.Close() }, nil
}
