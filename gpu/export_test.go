//go:build minitron_cuda || minitron_cudaemu

package gpu

// WithF32Activations returns o keeping a bf16 training model's
// activations per layer in f32 (the layout before the bf16 stores), the
// reference the bf16 layout is compared with.
func WithF32Activations(o Options) Options {
	o.f32Acts = true
	return o
}

// ActivationsPacked reports the bf16 activation layout (storeLayer).
func (m *Model) ActivationsPacked() bool { return m.packed }
