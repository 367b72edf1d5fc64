package main

import (
	"fmt"

	"github.com/minitron-dev/minitron/device"
)

// deviceHelp is the --device flag's help on the eval commands.
const deviceHelp = "cpu, or cuda (GPU 0; needs the CUDA build, make build-cuda)"

// parseDevice reads a --device flag with the one device parser
// (device.ParseBuilt: case-insensitive; in a binary without CUDA, cuda is
// an error naming the build to use, given before any model is loaded). Its
// errors begin with "device …"; the dashes make them name the flag.
func parseDevice(s string) (device.Kind, error) {
	k, err := device.ParseBuilt(s)
	if err != nil {
		return k, fmt.Errorf("--%w", err)
	}
	return k, nil
}

// deviceWeights is the --weights mode to load a model in: on the GPU the
// weights are read once from the checkpoint onto the device, so "auto"
// maps the file (streaming) instead of keeping an f32 copy in RAM.
func deviceWeights(weights string, dev device.Kind) string {
	if dev.IsCUDA() && (weights == "" || weights == "auto") {
		return "streaming"
	}
	return weights
}

// bf16Help is the --bf16 flag's help on the inference commands.
const bf16Help = "with --device cuda: keep the weight matrices (linear layers, embedding) on the GPU in bf16 only (half their f32 memory; bf16 products, f32 accumulation)"

// checkBF16 refuses --bf16 off the GPU, where the forward pass is f32.
func checkBF16(bf16 bool, dev device.Kind) error {
	if bf16 && !dev.IsCUDA() {
		return fmt.Errorf("--bf16 needs --device cuda (the CPU forward pass runs in f32)")
	}
	return nil
}

// noTF32Help is the --no-tf32 flag's help.
const noTF32Help = "with --device cuda: full f32 matrix products (no TF32 rounding of their inputs; slower, closer to the CPU)"
