//go:build !minitron_cuda && !minitron_cudaemu

package importance

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// cudaBuilt: this binary has no CUDA backend.
func cudaBuilt() error { return fmt.Errorf("importance --device cuda: %w", cuda.ErrNotBuilt) }

func newCUDAPasses(*model.Model, *Collector, Options, int, int) (passes, error) {
	return nil, cudaBuilt()
}
