//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// Optimizer offload (EngineConfig.Offload, ZeRO-Offload's idea on one
// GPU): the f32 master weights and the two AdamW moments, 12 B per
// parameter, live in host memory, and AdamW runs on the CPU with the CPU
// engine's rule (kernels.AdamWScalars.Apply). The device keeps what the
// passes read: the matrices in bf16 only (Options.WeightsBF16, norms and
// biases in f32) and the bf16 gradients of gradLayout. Each update
// downloads the clipped gradient a chunk at a time, steps the masters and
// moments of the chunk on all cores, and uploads the chunk's new weights
// (rounded to bf16 for the matrices), so a 4.5B student's 54 GB of
// optimizer state leaves the GPU for 2 B per parameter of transfer each
// way per optimizer step.
type offload struct {
	w, m1, m2 []float32 // arena layout (param.aoff)
	// per-chunk scratch: the gradient as bf16 bits and widened, and the
	// weights rounded to bf16
	gb, wb []uint16
	g      []float32
}

// offloadChunk is the values moved per transfer (16 MiB of f32 scratch).
const offloadChunk = 1 << 22

// newOffload reads the initial master weights from src.
func (t *Engine) newOffload(src model.TensorSource) error {
	s := t.S
	if src == nil {
		return fmt.Errorf("gpu: optimizer offload needs the initial weights (EngineConfig.Weights)")
	}
	n := s.arenaN
	o := &offload{w: make([]float32, n), m1: make([]float32, n), m2: make([]float32, n)}
	for _, p := range s.params {
		if err := src.ReadF32(p.name, o.w[p.aoff:p.aoff+p.n]); err != nil {
			return fmt.Errorf("gpu: master weights: %w", err)
		}
	}
	c := min(n, offloadChunk)
	o.gb, o.wb, o.g = make([]uint16, c), make([]uint16, c), make([]float32, c)
	t.off = o
	return nil
}

// updateOffload is Update with the masters and moments on the host: the
// gradient clipped on the device as Update clips it, then per chunk of
// each tensor download, AdamW on the host and upload.
func (t *Engine) updateOffload(lr float64, clip float32, step int) error {
	if err := t.clipGrads(clip); err != nil {
		return err
	}
	s, d, o := t.S, t.S.d, t.off
	for i, p := range s.params {
		sc := t.Optim.Scalars(lr, step, model.TensorInfo{Name: p.name, Shape: p.shape})
		bf := t.gl.bf[i]
		for lo := 0; lo < p.n; lo += len(o.g) {
			hi := min(lo+len(o.g), p.n)
			n := hi - lo
			g, at := o.g[:n], t.gl.at[i]+lo
			if bf {
				if err := d.DownloadBF16(o.gb[:n], t.stepGradB().Slice(at, at+n)); err != nil {
					return err
				}
				widen(g, o.gb[:n])
			} else if err := d.Download(g, t.stepGrad().Slice(at, at+n)); err != nil {
				return err
			}
			a := p.aoff + lo
			w := o.w[a : a+n]
			parallelAdamW(sc, w, g, o.m1[a:a+n], o.m2[a:a+n])
			if p.boff >= 0 {
				if err := d.UploadBF16(s.WB.Slice(p.boff+lo, p.boff+hi), narrow(o.wb[:n], w)); err != nil {
					return err
				}
			}
			if p.off >= 0 {
				if err := d.CopyFrom(s.W.Slice(p.off+lo, p.off+hi), w); err != nil {
					return err
				}
			}
		}
	}
	return t.updateISProj(lr, step)
}

// widen sets g to the bf16 bits b as f32 (exact).
func widen(g []float32, b []uint16) {
	for i, u := range b {
		g[i] = math.Float32frombits(uint32(u) << 16)
	}
}

// narrow rounds w into b as the device's f32_to_bf16 does (nearest even)
// and returns b.
func narrow(b []uint16, w []float32) []uint16 {
	for i, x := range w {
		b[i] = model.BF16FromF32(x)
	}
	return b
}

// parallelAdamW is sc.Apply over w, g, m, v split across the cores (each
// element's update is independent, so the result is the serial one's).
func parallelAdamW(sc kernels.AdamWScalars, w, g, m, v []float32) {
	const grain = 1 << 16
	k := min(runtime.GOMAXPROCS(0), (len(w)+grain-1)/grain)
	if k <= 1 {
		sc.Apply(w, g, m, v)
		return
	}
	var wg sync.WaitGroup
	per := (len(w) + k - 1) / k
	for lo := 0; lo < len(w); lo += per {
		hi := min(lo+per, len(w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.Apply(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi])
		}()
	}
	wg.Wait()
}

// offloadState copies tensor name's host masters and moments to (read)
// or from (write) the non-nil slices, uploading written weights to the
// device copy the passes read.
func (t *Engine) offloadState(name string, w, m1, m2 []float32, write bool) error {
	s, o := t.S, t.off
	i, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("gpu: no trained tensor %q on the device", name)
	}
	p := s.params[i]
	for _, x := range []struct{ host, mine []float32 }{{w, o.w}, {m1, o.m1}, {m2, o.m2}} {
		if x.host == nil {
			continue
		}
		if len(x.host) != p.n {
			return fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", name, p.n, len(x.host))
		}
		mine := x.mine[p.aoff : p.aoff+p.n]
		if write {
			copy(mine, x.host)
		} else {
			copy(x.host, mine)
		}
	}
	if !write || w == nil {
		return nil
	}
	d := s.d
	if p.boff >= 0 {
		if err := d.UploadBF16(s.WB.Slice(p.boff, p.boff+p.n), narrow(make([]uint16, p.n), w)); err != nil {
			return err
		}
	}
	if p.off >= 0 {
		return d.CopyFrom(s.W.Slice(p.off, p.off+p.n), w)
	}
	return nil
}

func errOffloadZero() error {
	return fmt.Errorf("gpu: optimizer offload keeps every master weight and moment on each rank's host: it does not shard (train with --zero 0)")
}
