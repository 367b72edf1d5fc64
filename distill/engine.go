package distill

import "fmt"

// Engine runs a Run's optimizer steps. The CPU Trainer is one; the CUDA
// build adds a device-resident one (engine_cuda.go, Config.Device "cuda").
// Run keeps a host Student and AdamW in every case: they are what
// checkpoints are written from and resumed into, so a run can resume on
// either device.
type Engine interface {
	// TrainStep runs one optimizer step over the micro-batches.
	TrainStep(micro [][][]int32, skipNonFinite bool) (StepMetrics, error)
	// Evaluate returns the mean validation metrics (no update).
	Evaluate(batches [][][]int32) (StepMetrics, error)
	// StepsDone is the number of optimizer steps taken (resumed ones included).
	StepsDone() int
	// Sync brings the host Student's weights and the AdamW state up to
	// date (a download for a device engine) before a checkpoint is written.
	Sync() error
	// Close releases what the engine holds (not the host Student).
	Close() error
}

// StepsDone is tr.Step.
func (tr *Trainer) StepsDone() int { return tr.Step }

// Sync is a no-op: the CPU trainer updates the host state in place.
func (tr *Trainer) Sync() error { return nil }

// Close is a no-op: the Student is closed by its owner.
func (tr *Trainer) Close() error { return nil }

// newEngine returns the engine for c.Device around the CPU trainer tr
// (already positioned at the resumed step).
func newEngine(c *Config, tr *Trainer) (Engine, error) {
	switch c.Device {
	case "", "cpu":
		return tr, nil
	case "cuda":
		return newCUDAEngine(c, tr)
	}
	return nil, fmt.Errorf("--device %q: want cpu or cuda", c.Device)
}
