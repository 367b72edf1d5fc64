//go:build !minitron_cuda && !minitron_cudaemu

package eval

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// errNoCUDA is what every device entry point returns in this build.
func errNoCUDA() error { return fmt.Errorf("--device cuda: %w", cuda.ErrNotBuilt) }

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

// DeviceBuilt reports whether this binary can run a DeviceLM: here an
// error naming the build that can (make build-cuda).
func DeviceBuilt() error { return errNoCUDA() }
