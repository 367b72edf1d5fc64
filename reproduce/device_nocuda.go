//go:build !minitron_cuda && !minitron_cudaemu

package reproduce

import "github.com/minitron-dev/minitron/device"

// openGPU fails in a binary built without the CUDA backend, naming the
// build that has it (parseDevice's device.ParseBuilt already said so; this
// keeps the function total).
func openGPU() (string, error) { return "", device.CUDA.Check() }
