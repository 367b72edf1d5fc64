//go:build !minitron_cuda && !minitron_cudaemu

package device

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// cudaBuilt: this binary has no CUDA backend (cuda.ErrNotBuilt, which
// exists only in such builds, names the build that has one).
func cudaBuilt() error { return fmt.Errorf("device cuda: %w", cuda.ErrNotBuilt) }
