//go:build minitron_cuda || minitron_cudaemu

package gpu

import "fmt"

// downloadParam copies p's weights to host (len p.n): from the f32 arena,
// or widened from the bf16 store for a tensor kept only in bf16 (through a
// temporary f32 buffer of the tensor's size).
func (m *Model) downloadParam(p param, host []float32) error {
	if len(host) != p.n {
		return fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", p.name, p.n, len(host))
	}
	if p.off >= 0 {
		return m.d.Download(host, m.W.Slice(p.off, p.off+p.n))
	}
	tmp, err := m.d.Alloc(p.n)
	if err != nil {
		return err
	}
	defer m.d.Free(tmp)
	if err := m.d.FromBF16(tmp, m.WB.Slice(p.boff, p.boff+p.n)); err != nil {
		return err
	}
	return m.d.Download(host, tmp)
}
