package eval

import (
	"fmt"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// LMOptions choose the LM NewLM builds for a model.
type LMOptions struct {
	// Device: the CPU (ModelLM, the zero value) or device.CUDA (DeviceLM
	// on GPU 0; a binary built with -tags minitron_cuda).
	Device device.Kind
	// MaxLen is the window; 0 means the config's max_position_embeddings.
	MaxLen int
	// EOS are the ids generation stops on; nil means the model's EOS.
	EOS []int
	// Workers (CPU) scores up to this many requests at once (ModelLM.Workers;
	// 0 is one).
	Workers int
	// Rows (cuda) is the most sequences one device pass takes (0: as many
	// as fit, see DeviceOptions.Rows); Seq fixes the device's sequence
	// capacity when the longest input is known (0: grown on demand).
	Rows, Seq int
	// NoTF32 and BF16 (cuda only): full f32 matrix products; weight
	// matrices in bf16 only.
	NoTF32, BF16 bool
}

// deviceScoreBatch is how many requests (windows, contexts) a DeviceLM is
// handed per Score call by default: enough to fill its passes.
const deviceScoreBatch = 64

// NewLM is the LM to score m with, on the CPU or on GPU 0, and how many
// requests to hand it per Score call (PPLOptions.Batch, Runner.Batch): the
// CPU's workers, or on the device at least enough rows to fill its passes.
// closeLM frees the device (a no-op on the CPU); m stays the caller's.
func NewLM(m *model.Model, o LMOptions) (lm LM, scoreBatch int, closeLM func(), err error) {
	dev, err := device.ParseBuilt(string(o.Device))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("eval: %w", err)
	}
	if !dev.IsCUDA() {
		if o.BF16 {
			return nil, 0, nil, fmt.Errorf("eval: BF16 weights need Device cuda (the CPU forward pass runs in f32)")
		}
		return &ModelLM{M: m, MaxLen: o.MaxLen, Workers: o.Workers, EOS: o.EOS}, max(o.Workers, 1), func() {}, nil
	}
	d, err := NewDeviceLM(m, DeviceOptions{MaxLen: o.MaxLen, Seq: o.Seq, Rows: o.Rows, EOS: o.EOS, NoTF32: o.NoTF32, BF16: o.BF16})
	if err != nil {
		return nil, 0, nil, err
	}
	return d, max(o.Rows, deviceScoreBatch), func() { d.Close() }, nil
}
