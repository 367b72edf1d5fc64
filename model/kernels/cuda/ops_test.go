//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"slices"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Tolerances: elementwise kernels differ from the CPU only in the exp/erf
// implementation (1e-5 relative); row reductions sum in a different order
// (1e-4); scatter-adds and attention's atomics add order noise on top.

func TestEmbedding(t *testing.T) {
	const vocab, dim = 50, 40
	ids := []int{3, 0, 49, 3, 17, 3, 49}
	table := randn(vocab*dim, 1)
	want := make([]float32, len(ids)*dim)
	must(t, kernels.Embedding(want, table, ids, dim))
	out := alloc(t, len(want))
	gids := upInts(t, ids)
	must(t, dev.Embedding(out, up(t, table), gids, len(ids), dim))
	near(t, "embedding", down(t, out), want, 0, 0)

	// Backward accumulates into an existing table; id 3 repeats three times.
	dy := randn(len(ids)*dim, 2)
	dt := randn(vocab*dim, 3)
	gdt := up(t, dt)
	kernels.EmbeddingBackward(dt, dy, ids, dim)
	must(t, dev.EmbeddingBackward(gdt, up(t, dy), gids, len(ids), dim))
	near(t, "embedding backward", down(t, gdt), dt, 1e-6, 1e-6)
}

func TestActivations(t *testing.T) {
	const rows, n, ld = 13, 300, 700 // gate/up are views into a fused [rows, 2n+100] buffer
	x := randn(rows*n, 4)
	for _, a := range []kernels.Activation{kernels.ReLU2, kernels.SiLU, kernels.GELU, kernels.GELUTanh, kernels.ReLU} {
		t.Run(a.String(), func(t *testing.T) {
			want := make([]float32, len(x))
			a.Apply(want, x)
			gx := up(t, x)
			out := alloc(t, len(x))
			must(t, dev.Activate(a, out, gx))
			near(t, "forward", down(t, out), want, 1e-6, 1e-5)

			fused := randn(rows*ld, 5)
			gate, upv := fused, fused[n:]
			wantG := make([]float32, rows*n)
			a.ApplyGated(wantG, gate, upv, rows, n, ld)
			gf := up(t, fused)
			gout := alloc(t, rows*n)
			must(t, dev.ApplyGated(a, gout, gf, gf.Off(n), rows, n, ld))
			near(t, "gated forward", down(t, gout), wantG, 1e-6, 1e-5)

			dy := randn(len(x), 6)
			dx := make([]float32, len(x))
			cpuErr := a.Backward(dx, dy, x)
			gdx := alloc(t, len(x))
			gpuErr := dev.ActivationBackward(a, gdx, up(t, dy), gx)
			if (cpuErr == nil) != (gpuErr == nil) {
				t.Fatalf("backward errors differ: cpu %v, gpu %v", cpuErr, gpuErr)
			}
			if cpuErr != nil {
				return // GELU has no backward on either side
			}
			near(t, "backward", down(t, gdx), dx, 1e-6, 1e-5)

			dout := randn(rows*n, 7)
			dfused := make([]float32, rows*ld)
			must(t, a.BackwardGated(dfused, dfused[n:], dout, gate, upv, rows, n, ld))
			gdf := alloc(t, rows*ld)
			must(t, dev.BackwardGated(a, gdf, gdf.Off(n), up(t, dout), gf, gf.Off(n), rows, n, ld))
			near(t, "gated backward", down(t, gdf), dfused, 1e-6, 1e-5)
		})
	}
}

func TestAddBiasScaleColSum(t *testing.T) {
	const rows, n = 37, 130
	x, y, b := randn(rows*n, 8), randn(rows*n, 9), randn(n, 10)
	gx := up(t, x)
	must(t, dev.Add(gx, up(t, y)))
	must(t, dev.AddBias(gx, up(t, b), rows))
	must(t, dev.Scale(gx, 0.5))
	kernels.Add(x, y)
	kernels.AddBias(x, b, rows)
	for i := range x {
		x[i] *= 0.5
	}
	near(t, "add/bias/scale", down(t, gx), x, 1e-6, 1e-6)
	want := make([]float32, n)
	kernels.ColSum(want, x, rows, n)
	got := alloc(t, n)
	must(t, dev.ColSum(got, gx, rows, n))
	near(t, "colsum", down(t, got), want, 1e-5, 1e-5)
}

func TestNorms(t *testing.T) {
	for _, c := range []struct {
		name      string
		rows, dim int
		bias, acc bool
		reason    string
	}{
		{"small", 5, 24, true, false, "dim below one warp"},
		{"odd", 37, 200, false, true, "dim not a multiple of 32, no bias, accumulating dx"},
		{"wide", 64, 3072, true, false, "several elements per thread (Minitron-4B width)"},
		{"tall", 300, 48, true, true, "more rows than one weight-gradient chunk: partial sums, then col_sum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, dim := c.rows, c.dim
			x, w, b, dy := randn(rows*dim, 11), randn(dim, 12), randn(dim, 13), randn(rows*dim, 14)
			for i := range x {
				x[i] = 3*x[i] + 1 // a mean far from 0 exercises the two-pass variance
			}
			gx, gw, gdy := up(t, x), up(t, w), up(t, dy)
			var gb cuda.Buf
			var cb []float32
			if c.bias {
				gb, cb = up(t, b), b
			}
			const eps = 1e-5

			// LayerNorm1P
			out, mean, rstd := make([]float32, rows*dim), make([]float32, rows), make([]float32, rows)
			kernels.LayerNorm1PStats(out, mean, rstd, x, w, cb, rows, dim, eps)
			gout, gmean, grstd := alloc(t, rows*dim), alloc(t, rows), alloc(t, rows)
			must(t, dev.LayerNorm1PStats(gout, gmean, grstd, gx, gw, gb, rows, dim, eps))
			near(t, "layernorm out", down(t, gout), out, 1e-5, 1e-4)
			near(t, "layernorm mean", down(t, gmean), mean, 1e-5, 1e-5)
			near(t, "layernorm rstd", down(t, grstd), rstd, 1e-6, 1e-4)
			dx0 := randn(rows*dim, 15)
			dx, dw, db := slices.Clone(dx0), make([]float32, dim), make([]float32, dim)
			var cdb []float32
			var gdb cuda.Buf
			if c.bias {
				cdb, gdb = db, alloc(t, dim)
			}
			kernels.LayerNorm1PBackward(dx, dw, cdb, dy, x, w, mean, rstd, rows, dim, c.acc)
			gdx, gdw := up(t, dx0), alloc(t, dim)
			// the GPU backward uses the CPU's statistics so only the backward is compared
			must(t, dev.LayerNorm1PBackward(gdx, gdw, gdb, gdy, gx, gw, up(t, mean), up(t, rstd), rows, dim, c.acc))
			near(t, "layernorm dx", down(t, gdx), dx, 1e-4, 1e-4)
			near(t, "layernorm dw", down(t, gdw), dw, 1e-4, 1e-4)
			if c.bias {
				near(t, "layernorm db", down(t, gdb), db, 1e-4, 1e-4)
			}

			// RMSNorm
			kernels.RMSNormStats(out, rstd, x, w, rows, dim, eps)
			must(t, dev.RMSNormStats(gout, grstd, gx, gw, rows, dim, eps))
			near(t, "rmsnorm out", down(t, gout), out, 1e-5, 1e-4)
			near(t, "rmsnorm rstd", down(t, grstd), rstd, 1e-6, 1e-4)
			dx = slices.Clone(dx0)
			kernels.RMSNormBackward(dx, dw, dy, x, w, rstd, rows, dim, c.acc)
			gdx = up(t, dx0)
			must(t, dev.RMSNormBackward(gdx, gdw, gdy, gx, gw, up(t, rstd), rows, dim, c.acc))
			near(t, "rmsnorm dx", down(t, gdx), dx, 1e-4, 1e-4)
			near(t, "rmsnorm dw", down(t, gdw), dw, 1e-4, 1e-4)
		})
	}
}

func TestRope(t *testing.T) {
	// Partial rotary (rot 8 of head dim 16, Nemotron-style) in a fused
	// buffer whose rows are wider than the heads (ld > heads·headDim).
	const rows, heads, hd, rot, ld, positions = 10, 3, 16, 8, 60, 32
	inv, err := kernels.RopeInvFreq(rot, 10000, nil)
	must(t, err)
	cos, sin := kernels.RopeTables(inv, positions)
	pos := []int{0, 1, 2, 31, 5, 5, 17, 9, 0, 30}
	x := randn(rows*ld, 16)
	gx := up(t, x)
	gpos, gcos, gsin := upInts(t, pos), up(t, cos), up(t, sin)
	want := slices.Clone(x)
	kernels.ApplyRope(want, rows, ld, heads, hd, rot, pos, cos, sin)
	must(t, dev.ApplyRope(gx, rows, ld, heads, hd, rot, gpos, gcos, gsin, false))
	near(t, "rope", down(t, gx), want, 1e-6, 1e-6)

	// inverse: the CPU negates the sin table; both must return to x
	neg := slices.Clone(sin)
	for i := range neg {
		neg[i] = -neg[i]
	}
	kernels.ApplyRope(want, rows, ld, heads, hd, rot, pos, cos, neg)
	must(t, dev.ApplyRope(gx, rows, ld, heads, hd, rot, gpos, gcos, gsin, true))
	got := down(t, gx)
	near(t, "rope inverse", got, want, 1e-6, 1e-6)
	near(t, "rope round trip", got, x, 1e-5, 1e-5)
}
