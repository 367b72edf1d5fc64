//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// runBenchForwardCUDA is `bench forward --device cuda` in a binary without
// the CUDA backend: an error saying how to get one.
func runBenchForwardCUDA(_ *BenchForwardOptions, _ io.Writer) error {
	return fmt.Errorf("--device cuda: %w", cuda.ErrNotBuilt)
}
