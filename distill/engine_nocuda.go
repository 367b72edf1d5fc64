//go:build !minitron_cuda && !minitron_cudaemu

package distill

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// checkCUDA: this binary has no CUDA backend.
func checkCUDA(*Config) error { return fmt.Errorf("--device cuda: %w", cuda.ErrNotBuilt) }

func newCUDAEngine(c *Config, _ *Trainer) (Engine, error) { return nil, checkCUDA(c) }
