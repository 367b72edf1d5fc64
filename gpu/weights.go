//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// downloadParam copies p's weights to host (len p.n): from the f32 arena,
// or widened from the bf16 store for a tensor kept only in bf16.
func (m *Model) downloadParam(p param, host []float32) error {
	if len(host) != p.n {
		return fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", p.name, p.n, len(host))
	}
	if p.off >= 0 {
		return m.d.Download(host, m.W.Slice(p.off, p.off+p.n))
	}
	return m.downloadBF16(host, m.WB.Slice(p.boff, p.boff+p.n))
}

// downloadBF16 copies src to host (len src.N) widened to f32, through a
// temporary f32 buffer of at most bf16Chunk values.
func (m *Model) downloadBF16(host []float32, src cuda.BF16) error {
	tmp, err := m.d.Alloc(min(src.N, bf16Chunk))
	if err != nil {
		return err
	}
	defer m.d.Free(tmp)
	for lo := 0; lo < src.N; lo += tmp.N {
		hi := min(lo+tmp.N, src.N)
		t := tmp.Slice(0, hi-lo)
		if err := firstErr(m.d.FromBF16(t, src.Slice(lo, hi)), m.d.Download(host[lo:hi], t)); err != nil {
			return err
		}
	}
	return nil
}

// uploadBF16 rounds host (len dst.N) into dst on the device (ToBF16's
// rounding), going up through the f32 staging buffer stage a chunk at a
// time. The copy is synchronous with the stream: the previous chunk's
// rounding has read stage before it is overwritten.
func (m *Model) uploadBF16(dst cuda.BF16, host []float32, stage cuda.Buf) error {
	for lo := 0; lo < dst.N; lo += stage.N {
		hi := min(lo+stage.N, dst.N)
		s := stage.Slice(0, hi-lo)
		if err := firstErr(m.d.CopyFrom(s, host[lo:hi]), m.d.ToBF16(dst.Slice(lo, hi), s)); err != nil {
			return err
		}
	}
	return nil
}
