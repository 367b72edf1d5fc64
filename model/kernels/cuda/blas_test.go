//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"math"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// gemmBound returns, per element of C = op(A)·op(B), Σ_k |a||b|: the
// scale that rounding errors of the inputs and the sum are relative to.
func gemmBound(tA, tB bool, m, n, k int, a []float32, lda int, b []float32, ldb int) []float32 {
	abs := func(x []float32) []float32 {
		y := make([]float32, len(x))
		for i, v := range x {
			y[i] = float32(math.Abs(float64(v)))
		}
		return y
	}
	out := make([]float32, m*n)
	kernels.Sgemm(tA, tB, m, n, k, 1, abs(a), lda, abs(b), ldb, 0, out, n)
	return out
}

// nearBound checks |got−want| ≤ rel·bound elementwise.
func nearBound(t *testing.T, what string, got, want, bound []float32, rel float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > rel*float64(bound[i])+1e-6 {
			t.Fatalf("%s[%d] = %v, want %v (|diff| %g > %g·%g)", what, i, got[i], want[i], d, rel, bound[i])
		}
	}
}

// Matrix products against kernels.Sgemm. With TF32 each input keeps 10
// mantissa bits (relative error 2⁻¹¹ each, 2⁻¹⁰ per product), so the error
// bound is 2⁻⁹·Σ|a||b| (a factor two of slack for the f32 sums); with TF32
// off it is f32 accumulation only: 2⁻¹⁶·Σ|a||b| at these k.
func TestSgemm(t *testing.T) {
	for _, c := range []struct {
		name       string
		tA, tB     bool
		m, n, k    int
		lda, ldb   int // 0: packed
		alpha, bet float32
		reason     string
	}{
		{"NN", false, false, 33, 65, 129, 0, 0, 1, 0, "odd sizes"},
		{"NT", false, true, 64, 96, 256, 0, 0, 1, 0, "MatMulT: y = x·wᵀ"},
		{"TN", true, false, 70, 50, 40, 0, 0, 0.5, 1, "weight gradient xᵀ·dy, accumulating"},
		{"TT", true, true, 17, 23, 31, 0, 0, 2, 0, "both transposed"},
		{"strided", false, true, 20, 30, 40, 100, 60, 1, 0.25, "views into wider buffers (fused QKV)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ar, ac := c.m, c.k
			if c.tA {
				ar, ac = c.k, c.m
			}
			br, bc := c.k, c.n
			if c.tB {
				br, bc = c.n, c.k
			}
			lda, ldb := max(c.lda, ac), max(c.ldb, bc)
			a, b, c0 := randn(ar*lda, 90), randn(br*ldb, 91), randn(c.m*c.n, 92)
			want := append([]float32(nil), c0...)
			kernels.Sgemm(c.tA, c.tB, c.m, c.n, c.k, c.alpha, a, lda, b, ldb, c.bet, want, c.n)
			bound := gemmBound(c.tA, c.tB, c.m, c.n, c.k, a, lda, b, ldb)
			for i := range bound {
				bound[i] = bound[i]*float32(math.Abs(float64(c.alpha))) + float32(math.Abs(float64(c.bet*c0[i])))
			}
			ga, gb := up(t, a), up(t, b)
			for _, tf32 := range []bool{true, false} {
				must(t, dev.SetTF32(tf32))
				gc := up(t, c0)
				must(t, dev.Sgemm(c.tA, c.tB, c.m, c.n, c.k, c.alpha, ga, lda, gb, ldb, c.bet, gc, c.n))
				rel := 1.0 / 65536
				if tf32 {
					rel = 1.0 / 512
				}
				nearBound(t, map[bool]string{true: "tf32", false: "f32"}[tf32], down(t, gc), want, bound, rel)
			}
			must(t, dev.SetTF32(true))
		})
	}

	// MatMulT, batched, and a size check that must fail.
	const m, n, k, batch = 8, 12, 16, 3
	x, w := randn(batch*m*k, 93), randn(batch*n*k, 94)
	want := make([]float32, batch*m*n)
	for i := 0; i < batch; i++ {
		kernels.MatMulT(want[i*m*n:], x[i*m*k:], w[i*n*k:], m, n, k, false)
	}
	bound := make([]float32, batch*m*n)
	for i := 0; i < batch; i++ {
		copy(bound[i*m*n:], gemmBound(false, true, m, n, k, x[i*m*k:], k, w[i*n*k:], k))
	}
	gx, gw, gy := up(t, x), up(t, w), alloc(t, batch*m*n)
	must(t, dev.SgemmStridedBatched(false, true, m, n, k, 1, gx, k, m*k, gw, k, n*k, 0, gy, n, m*n, batch))
	nearBound(t, "batched", down(t, gy), want, bound, 1.0/512)
	must(t, dev.MatMulT(gy, gx, gw, m, n, k, false))
	nearBound(t, "MatMulT", down(t, gy)[:m*n], want[:m*n], bound, 1.0/512)
	if err := dev.Sgemm(false, false, 100, 100, 100, 1, gx, 100, gw, 100, 0, gy, 100); err == nil {
		t.Error("Sgemm on too-small buffers succeeded")
	}
}

// bf16 round to nearest even, as the device conversion does.
func bf16(v float32) float32 {
	u := math.Float32bits(v)
	u += 0x7fff + (u>>16)&1
	return math.Float32frombits(u &^ 0xffff)
}

// The bf16 path: conversion rounds like bf16() above (exact match), and
// GemmEx with f32 accumulation matches an f32 product of the rounded inputs
// up to the summation order (2⁻¹⁶·Σ|a||b|).
func TestGemmBF16(t *testing.T) {
	const m, n, k = 48, 40, 64
	a, b := randn(m*k, 95), randn(n*k, 96)
	ga, gb := up(t, a), up(t, b)
	ha, err := dev.AllocBF16(m * k)
	must(t, err)
	hb, err := dev.AllocBF16(n * k)
	must(t, err)
	t.Cleanup(func() { dev.FreeBF16(ha); dev.FreeBF16(hb) })
	must(t, dev.ToBF16(ha, ga))
	must(t, dev.ToBF16(hb, gb))
	ra, rb := make([]float32, len(a)), make([]float32, len(b))
	for i, v := range a {
		ra[i] = bf16(v)
	}
	for i, v := range b {
		rb[i] = bf16(v)
	}
	back := alloc(t, len(a))
	must(t, dev.FromBF16(back, ha))
	near(t, "bf16 round trip", down(t, back), ra, 0, 0)

	want := make([]float32, m*n)
	kernels.MatMulT(want, ra, rb, m, n, k, false)
	gc := alloc(t, m*n)
	must(t, dev.GemmBF16(false, true, m, n, k, 1, ha, k, hb, k, 0, gc, n))
	nearBound(t, "bf16 gemm", down(t, gc), want, gemmBound(false, true, m, n, k, ra, k, rb, k), 1.0/65536)
	_ = cuda.BF16{}
}

// GemmBF16Out (bf16 C, the weight gradients under mixed precision): the
// sum runs in f32 and rounds to bf16 once on the store, so each value is
// the f32 product of the rounded inputs (up to 2⁻¹⁶·Σ|a||b| of summation
// order) rounded to bf16: half a bf16 ulp more, 2⁻⁸ relative. The emulator
// sums in one order, so there it equals bf16(GemmBF16) exactly.
func TestGemmBF16Out(t *testing.T) {
	for _, c := range []struct {
		name        string
		tA, tB      bool
		m, n, k     int
		alpha, beta float32
		reason      string
	}{
		{"TN", true, false, 40, 24, 96, 1, 0, "the weight gradient's shape: dWᵀ = dyᵀ·x"},
		{"NT beta", false, true, 33, 17, 65, 0.5, 1, "odd sizes, accumulating into a bf16 C (micro-batch accumulation)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ar, ac, br, bc := c.m, c.k, c.k, c.n
			if c.tA {
				ar, ac = ac, ar
			}
			if c.tB {
				br, bc = bc, br
			}
			a, b, c0 := randn(ar*ac, 97), randn(br*bc, 98), randn(c.m*c.n, 99)
			ha, err := dev.AllocBF16(len(a))
			must(t, err)
			hb, err := dev.AllocBF16(len(b))
			must(t, err)
			hc, err := dev.AllocBF16(len(c0))
			must(t, err)
			t.Cleanup(func() { dev.FreeBF16(ha); dev.FreeBF16(hb); dev.FreeBF16(hc) })
			must(t, dev.ToBF16(ha, up(t, a)))
			must(t, dev.ToBF16(hb, up(t, b)))
			must(t, dev.ToBF16(hc, up(t, c0)))
			// reference: the f32-output product over the same bf16 inputs,
			// starting from the bf16-rounded C
			ref := alloc(t, len(c0))
			must(t, dev.FromBF16(ref, hc))
			must(t, dev.GemmBF16(c.tA, c.tB, c.m, c.n, c.k, c.alpha, ha, ac, hb, bc, c.beta, ref, c.n))
			must(t, dev.GemmBF16Out(c.tA, c.tB, c.m, c.n, c.k, c.alpha, ha, ac, hb, bc, c.beta, hc, c.n))
			got := alloc(t, len(c0))
			must(t, dev.FromBF16(got, hc))
			want := down(t, ref)
			g := down(t, got)
			for i, w := range want {
				rw := bf16(w)
				if cuda.Emulated() {
					if g[i] != rw {
						t.Fatalf("[%d] = %v, want bf16(%v) = %v exactly on the emulator", i, g[i], w, rw)
					}
					continue
				}
				if d := math.Abs(float64(g[i] - w)); d > math.Abs(float64(w))/256+1e-3 {
					t.Fatalf("[%d] = %v, want %v within 2⁻⁸ relative", i, g[i], w)
				}
			}
		})
	}
	if err := dev.GemmBF16Out(false, false, 8, 8, 8, 1, cuda.BF16{N: 64}, 8, cuda.BF16{N: 64}, 8, 0, cuda.BF16{N: 10}, 8); err == nil {
		t.Error("GemmBF16Out on a too-small C succeeded")
	}
}
