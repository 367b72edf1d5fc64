//go:build minitron_cuda || minitron_cudaemu

package gpu

import "fmt"

// downloadParam copies p's weights to host (len p.n): from the f32 arena,
// or widened from the bf16 store for a tensor kept only in bf16 (through a
// temporary f32 buffer of at most bf16Chunk values).
func (m *Model) downloadParam(p param, host []float32) error {
	if len(host) != p.n {
		return fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", p.name, p.n, len(host))
	}
	if p.off >= 0 {
		return m.d.Download(host, m.W.Slice(p.off, p.off+p.n))
	}
	tmp, err := m.d.Alloc(min(p.n, bf16Chunk))
	if err != nil {
		return err
	}
	defer m.d.Free(tmp)
	for lo := 0; lo < p.n; lo += tmp.N {
		hi := min(lo+tmp.N, p.n)
		t := tmp.Slice(0, hi-lo)
		if err := firstErr(m.d.FromBF16(t, m.WB.Slice(p.boff+lo, p.boff+hi)), m.d.Download(host[lo:hi], t)); err != nil {
			return err
		}
	}
	return nil
}
