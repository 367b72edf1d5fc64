package kernels

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkAttentionTrainShape times one layer's attention forward and
// backward at the training bench shape (batch 8, T 128, 4 heads, 2 KV heads,
// head dim 64, fused QKV rows).
func BenchmarkAttentionTrainShape(b *testing.B) {
	const B, T, H, KV, hd = 8, 128, 4, 2, 64
	qd, kvd := H*hd, KV*hd
	W := qd + 2*kvd
	rng := rand.New(rand.NewPCG(1, 1))
	qkv := make([]float32, B*T*W)
	for i := range qkv {
		qkv[i] = rng.Float32() - 0.5
	}
	out, dout := make([]float32, B*T*qd), make([]float32, B*T*qd)
	for i := range dout {
		dout[i] = rng.Float32() - 0.5
	}
	probs := make([]float32, B*H*T*T)
	d := make([]float32, B*T*W)
	scratch := make([]float32, 32*T*Workers())
	dims := AttnDims{Batch: B, Heads: H, KVHeads: KV, HeadDim: hd, Tq: T, Tk: T, LdQ: W, LdK: W, LdV: W, LdO: qd}
	inv, _ := RopeInvFreq(hd, 10000, nil)
	cos, sin := RopeTables(inv, T)
	pos := make([]int, B*T)
	for i := range pos {
		pos[i] = i % T
	}
	rot := make([]float32, len(qkv))
	b.Run("rope", func(b *testing.B) {
		for b.Loop() {
			copy(rot, qkv)
			ApplyRope(rot, B*T, W, H, hd, hd, pos, cos, sin)
			ApplyRope(rot[qd:], B*T, W, KV, hd, hd, pos, cos, sin)
		}
	})
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			Attention(out, qkv, qkv[qd:], qkv[qd+kvd:], dims, probs)
		}
	})
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			AttentionBackward(d, d[qd:], d[qd+kvd:], dout, qkv, qkv[qd:], qkv[qd+kvd:], probs, dims, W, W, W, scratch)
		}
	})
}
