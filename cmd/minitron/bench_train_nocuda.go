//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// runBenchTrainCUDA is `bench train --device cuda` in a binary without the
// CUDA backend: an error saying how to get one.
func runBenchTrainCUDA(_ *BenchTrainOptions, _ *model.Config, _ io.Writer) error {
	return fmt.Errorf("--device cuda: %w", cuda.ErrNotBuilt)
}
