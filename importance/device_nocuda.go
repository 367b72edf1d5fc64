//go:build !minitron_cuda && !minitron_cudaemu

package importance

import (
	"fmt"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

func newCUDAPasses(*model.Model, *Collector, Options, int, int) (passes, error) {
	return nil, fmt.Errorf("importance: %w", device.CUDA.Check())
}
