//go:build minitron_cuda || minitron_cudaemu

package reproduce

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// openGPU opens GPU 0 once, before any stage, so that a machine without a
// usable GPU fails at once, and names it for the report. Each stage opens
// the device again for its own work.
func openGPU() (string, error) {
	d, err := cuda.Open(0)
	if err != nil {
		return "", fmt.Errorf("device cuda: %w", err)
	}
	name := d.Name
	if err := d.Close(); err != nil {
		return "", fmt.Errorf("device cuda: %w", err)
	}
	return name, nil
}
