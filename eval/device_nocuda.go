//go:build !minitron_cuda && !minitron_cudaemu

package eval

import (
	"fmt"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// errNoCUDA is what every device entry point returns in this build: the
// device package's not-built error (wrapping cuda.ErrNotBuilt).
func errNoCUDA() error { return fmt.Errorf("DeviceLM: %w", device.CUDA.Check()) }

// DeviceLM is the GPU LM of CUDA builds (make build-cuda). This binary has
// no CUDA backend: NewDeviceLM always fails with cuda.ErrNotBuilt, so no
// DeviceLM exists to call the methods below on.
type DeviceLM struct{}

// NewDeviceLM reports that this binary was built without CUDA.
func NewDeviceLM(*model.Model, DeviceOptions) (*DeviceLM, error) { return nil, errNoCUDA() }

// MaxLength implements LM.
func (*DeviceLM) MaxLength() int { return 0 }

// Score implements LM.
func (*DeviceLM) Score([]ScoreRequest) ([][]TokenScores, error) { return nil, errNoCUDA() }

// Generate implements LM.
func (*DeviceLM) Generate([]int, int, func([]int) bool) ([]int, error) { return nil, errNoCUDA() }

// Decode is the generate command's decoding on the device.
func (*DeviceLM) Decode([]int, model.GenerateOptions) (*model.GenerateResult, error) {
	return nil, errNoCUDA()
}

// SequenceNLL is eval nll on the device.
func (*DeviceLM) SequenceNLL([]int, bool) ([]float64, []float32, error) { return nil, nil, errNoCUDA() }

// Device names the GPU and the cuBLAS library.
func (*DeviceLM) Device() (name, blas string) { return "", "" }

// Close frees the device.
func (*DeviceLM) Close() error { return nil }
