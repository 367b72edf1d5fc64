//go:build !minitron_cuda && !minitron_cudaemu

package reproduce

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// openGPU fails in a binary built without the CUDA backend, naming the
// build that has it.
func openGPU() (string, error) { return "", fmt.Errorf("--device cuda: %w", cuda.ErrNotBuilt) }
