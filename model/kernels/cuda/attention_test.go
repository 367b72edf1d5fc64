//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Attention forward and backward against the CPU kernels. Tolerance 1e-4:
// scores and softmax are f32 on both sides but summed in different orders,
// and the backward's dK/dV are atomic sums over query rows.
func TestAttention(t *testing.T) {
	for _, c := range []struct {
		name   string
		d      kernels.AttnDims
		reason string
	}{
		{"causal", kernels.AttnDims{Batch: 2, Heads: 4, KVHeads: 2, HeadDim: 16, Tq: 40, Tk: 40}, "GQA, plain causal mask"},
		{"window", kernels.AttnDims{Batch: 2, Heads: 4, KVHeads: 4, HeadDim: 16, Tq: 40, Tk: 40, Window: 7}, "Mistral sliding window"},
		{"kvcache", kernels.AttnDims{Batch: 2, Heads: 4, KVHeads: 1, HeadDim: 32, Tq: 5, Tk: 40, KSeqRows: 48}, "decode step: Tq < Tk, cache capacity 48"},
		{"fused", kernels.AttnDims{Batch: 1, Heads: 4, KVHeads: 2, HeadDim: 16, Tq: 33, Tk: 33, LdQ: 128, LdK: 128, LdV: 128, LdO: 80}, "q/k/v are column bands of one fused QKV buffer"},
		{"wide", kernels.AttnDims{Batch: 1, Heads: 8, KVHeads: 2, HeadDim: 128, Tq: 300, Tk: 300}, "head dim 128, several warps per row"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "wide" && cuda.Emulated() {
				t.Skip("90 s on the CPU emulator; the other cases cover its code paths")
			}
			d := c.d
			ldq, ldk, ldv, ldo := or(d.LdQ, d.Heads*d.HeadDim), or(d.LdK, d.KVHeads*d.HeadDim), or(d.LdV, d.KVHeads*d.HeadDim), or(d.LdO, d.Heads*d.HeadDim)
			kseq := or(d.KSeqRows, d.Tk)
			q := randn(d.Batch*d.Tq*ldq, 20)
			k := randn(d.Batch*kseq*ldk, 21)
			v := randn(d.Batch*kseq*ldv, 22)
			out := make([]float32, d.Batch*d.Tq*ldo)
			probs := make([]float32, d.Batch*d.Heads*d.Tq*d.Tk)
			kernels.Attention(out, q, k, v, d, probs)
			gq, gk, gv := up(t, q), up(t, k), up(t, v)
			gout, gprobs := alloc(t, len(out)), alloc(t, len(probs))
			must(t, dev.Attention(gout, gq, gk, gv, d, gprobs))
			near(t, "out", down(t, gout), out, 1e-4, 1e-4)
			near(t, "probs", down(t, gprobs), probs, 1e-5, 1e-4)

			if d.Tq != d.Tk || kseq != d.Tk {
				return // the backward and the tensor-core path are for training layouts only
			}
			// the tensor-core (cuBLAS) path, with TF32 off and on: TF32
			// scores carry ~1e-3 relative error into the softmax
			for _, tf32 := range []bool{false, true} {
				must(t, dev.SetTF32(tf32))
				tol := map[bool]float64{false: 1e-4, true: 5e-3}[tf32]
				gout2, gprobs2 := alloc(t, len(out)), alloc(t, len(probs))
				must(t, dev.AttentionTC(gout2, gq, gk, gv, d, gprobs2))
				near(t, "tc out", down(t, gout2), out, tol, tol)
				near(t, "tc probs", down(t, gprobs2), probs, tol, tol)
			}
			must(t, dev.SetTF32(true))
			dout := randn(len(out), 23)
			dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
			kernels.AttentionBackward(dq, dk, dv, dout, q, k, v, probs, d, ldq, ldk, ldv, nil)
			gdq, gdk, gdv := alloc(t, len(q)), alloc(t, len(k)), alloc(t, len(v))
			must(t, dev.AttentionBackward(gdq, gdk, gdv, up(t, dout), gq, gk, gv, up(t, probs), d, ldq, ldk, ldv))
			near(t, "dq", down(t, gdq), dq, 1e-4, 1e-4)
			near(t, "dk", down(t, gdk), dk, 1e-4, 1e-4)
			near(t, "dv", down(t, gdv), dv, 1e-4, 1e-4)

			for _, tf32 := range []bool{false, true} {
				must(t, dev.SetTF32(tf32))
				tol := map[bool]float64{false: 1e-4, true: 5e-3}[tf32]
				gdq, gdk, gdv := alloc(t, len(q)), alloc(t, len(k)), alloc(t, len(v))
				must(t, dev.AttentionBackwardTC(gdq, gdk, gdv, up(t, dout), gq, gk, gv, up(t, probs), d, ldq, ldk, ldv))
				near(t, "tc dq", down(t, gdq), dq, tol, tol)
				near(t, "tc dk", down(t, gdk), dk, tol, tol)
				near(t, "tc dv", down(t, gdv), dv, tol, tol)
			}
			must(t, dev.SetTF32(true))
		})
	}
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
