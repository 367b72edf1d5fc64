//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"fmt"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Throughput of the pieces a training step is made of, for the first GPU
// session: the TF32/bf16 GEMM rate bounds the achievable MFU, and the
// attention kernel (a plain reference kernel, not flash attention) shows
// how far it is from that. Run: bin/cuda-parity.test -test.bench . -test.run '^$'.

func BenchmarkGEMM(b *testing.B) {
	const m, n, k = 4096, 4096, 4096
	x, err := dev.Alloc(m * k)
	must(b, err)
	w, err := dev.Alloc(n * k)
	must(b, err)
	y, err := dev.Alloc(m * n)
	must(b, err)
	defer func() { dev.Free(x); dev.Free(w); dev.Free(y) }()
	must(b, dev.Zero(x))
	must(b, dev.Zero(w))
	for _, mode := range []string{"tf32", "f32", "bf16"} {
		b.Run(mode, func(b *testing.B) {
			var hx, hw cuda.BF16
			if mode == "bf16" {
				hx, err = dev.AllocBF16(m * k)
				must(b, err)
				hw, err = dev.AllocBF16(n * k)
				must(b, err)
				defer func() { dev.FreeBF16(hx); dev.FreeBF16(hw) }()
				must(b, dev.ToBF16(hx, x))
				must(b, dev.ToBF16(hw, w))
			}
			must(b, dev.SetTF32(mode != "f32"))
			defer dev.SetTF32(true)
			run := func() {
				if mode == "bf16" {
					must(b, dev.GemmBF16(false, true, m, n, k, 1, hx, k, hw, k, 0, y, n))
				} else {
					must(b, dev.MatMulT(y, x, w, m, n, k, false))
				}
			}
			run()
			must(b, dev.Sync())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			must(b, dev.Sync())
			b.ReportMetric(2*float64(m)*n*k*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
		})
	}
}

func BenchmarkAttention(b *testing.B) {
	for _, T := range []int{1024, 4096} {
		d := kernels.AttnDims{Batch: 4, Heads: 16, KVHeads: 4, HeadDim: 64, Tq: T, Tk: T}
		b.Run(fmt.Sprintf("T%d", T), func(b *testing.B) {
			q, err := dev.Alloc(d.Batch * T * d.Heads * d.HeadDim)
			must(b, err)
			kv, err := dev.Alloc(d.Batch * T * d.KVHeads * d.HeadDim)
			must(b, err)
			out, err := dev.Alloc(q.N)
			must(b, err)
			defer func() { dev.Free(q); dev.Free(kv); dev.Free(out) }()
			must(b, dev.Zero(q))
			must(b, dev.Zero(kv))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				must(b, dev.Attention(out, q, kv, kv, d, cuda.Buf{}))
			}
			must(b, dev.Sync())
			// causal: half of the 4·B·H·T²·hd score and value FLOPs
			flops := 2 * float64(d.Batch*d.Heads) * float64(T) * float64(T) * float64(d.HeadDim)
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
		})
	}
}
