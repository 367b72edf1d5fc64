//go:build !minitron_cuda && !minitron_cudaemu

package main

import (
	"io"

	"github.com/minitron-dev/minitron/device"
)

// runBenchForwardCUDA is `bench forward --device cuda` in a binary without
// the CUDA backend: parseDevice has refused it already; this says the same
// should it be reached another way.
func runBenchForwardCUDA(_ *BenchForwardOptions, _ io.Writer) error {
	_, err := parseDevice(string(device.CUDA))
	return err
}
