//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"math"
	"slices"
	"testing"

	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// AdamW against the CPU kernel over three steps (the same f32 formula, so
// 1e-6 relative), one tensor with decay and one without.
func TestAdamW(t *testing.T) {
	const n = 10000
	ws := [][]float32{randn(n, 40), randn(n/10, 41)}
	ms, vs := [][]float32{make([]float32, n), make([]float32, n/10)}, [][]float32{make([]float32, n), make([]float32, n/10)}
	gw, gm, gv := make([]cuda.Buf, 2), make([]cuda.Buf, 2), make([]cuda.Buf, 2)
	for i, w := range ws {
		gw[i], gm[i], gv[i] = up(t, w), alloc(t, len(w)), alloc(t, len(w))
	}
	for step := 1; step <= 3; step++ {
		lr := 1e-3 * float64(step)
		grads := [][]float32{randn(n, uint64(50+step)), randn(n/10, uint64(60+step))}
		for i := range ws {
			s := kernels.AdamWScalars{B1: 0.9, B2: 0.999, Eps: 1e-8, Decay: float32(1 - lr*0.1),
				Step: float32(lr / (1 - math.Pow(0.9, float64(step)))), RBC2: float32(1 / math.Sqrt(1-math.Pow(0.999, float64(step))))}
			if i == 1 {
				s.Decay = 1
			}
			must(t, dev.AdamW(gw[i], up(t, grads[i]), gm[i], gv[i], s))
			s.Apply(ws[i], grads[i], ms[i], vs[i])
		}
	}
	for i := range ws {
		near(t, "weights", down(t, gw[i]), ws[i], 1e-7, 1e-6)
		near(t, "m", down(t, gm[i]), ms[i], 1e-7, 1e-6)
		near(t, "v", down(t, gv[i]), vs[i], 1e-9, 1e-6)
	}
}

// The global gradient norm's sum of squares, in float64 on both sides
// (1e-10 relative: only the summation order differs).
func TestSumSquares(t *testing.T) {
	a, b := randn(123457, 70), randn(999, 71)
	want := kernels.SumSquares(a) + kernels.SumSquares(b)
	got, err := dev.SumSquares(up(t, a), up(t, b))
	must(t, err)
	if math.Abs(got-want) > 1e-10*want {
		t.Errorf("SumSquares = %.12g, CPU %.12g", got, want)
	}
}

// Importance sums against importance.Accumulator for each sequence
// reduction, compared through the Scores it derives (float64 on both
// sides: 1e-9 relative).
func TestImportanceStats(t *testing.T) {
	const B, T, n = 3, 50, 300
	x := randn(B*T*n, 80)
	seqs := map[importance.SeqAgg]int{importance.SeqMean: cuda.SeqMean, importance.SeqL2: cuda.SeqL2, importance.SeqVar: cuda.SeqVar}
	gx := up(t, x)
	for sa, code := range seqs {
		st, err := dev.NewImportanceStats(n)
		must(t, err)
		// two calls: sums must accumulate across batches
		must(t, st.AddBatch(gx, 2, T, code))
		must(t, st.AddBatch(gx.Off(2*T*n), 1, T, code))
		sum, sumSq, err := st.Sums()
		must(t, err)
		must(t, st.Free())
		for _, ba := range []importance.BatchAgg{importance.BatchL2, importance.BatchMean, importance.BatchVar} {
			acc := importance.NewAccumulator(n, importance.Aggregation{Batch: ba, Seq: sa})
			acc.AddBatch(x, B, T)
			want := acc.Scores()
			for c := range want {
				var got float64
				switch ba {
				case importance.BatchL2:
					got = math.Sqrt(sumSq[c])
				case importance.BatchMean:
					got = sum[c] / B
				case importance.BatchVar:
					mu := sum[c] / B
					got = math.Max(0, sumSq[c]/B-mu*mu)
				}
				if math.Abs(got-want[c]) > 1e-9*math.Abs(want[c])+1e-12 {
					t.Fatalf("seq %s batch %s channel %d: %g, want %g", sa, ba, c, got, want[c])
				}
			}
		}
	}

	const rows, heads, hd = 20, 6, 64
	y := randn(rows*heads*hd, 81)
	want := importance.HeadNorms(nil, y, rows, heads, hd)
	got := alloc(t, rows*heads)
	must(t, dev.HeadNorms(got, up(t, y), rows, heads, hd))
	near(t, "head norms", down(t, got), want, 1e-6, 1e-6)
}

func TestPool(t *testing.T) {
	a, err := dev.Alloc(1000) // 4000 bytes: class 4096
	must(t, err)
	p := a.Ptr
	must(t, dev.Free(a))
	b, err := dev.Alloc(900) // same class: the block comes back
	must(t, err)
	if b.Ptr != p {
		t.Errorf("Alloc after Free got %v, want the cached block %v", b.Ptr, p)
	}
	if err := dev.Free(b.Off(1)); err == nil {
		t.Error("Free of a view succeeded")
	}
	must(t, dev.Free(b))
	if err := dev.Free(b); err == nil {
		t.Error("double Free succeeded")
	}
	before := dev.Pool().Cached
	must(t, dev.Trim())
	if dev.Pool().Cached != 0 || before == 0 {
		t.Errorf("Trim: cached %d before, %d after", before, dev.Pool().Cached)
	}
	if _, err := dev.Alloc(0); err == nil {
		t.Error("Alloc(0) succeeded")
	}
	_ = slices.Clone([]int{})
}

// upBF16 puts x on the device rounded to bf16, and returns the rounded
// values the kernels see.
func upBF16(t *testing.T, x []float32) (cuda.BF16, []float32) {
	t.Helper()
	b, err := dev.AllocBF16(len(x))
	must(t, err)
	t.Cleanup(func() { dev.FreeBF16(b) })
	must(t, dev.ToBF16(b, up(t, x)))
	r := make([]float32, len(x))
	for i, v := range x {
		r[i] = bf16(v)
	}
	return b, r
}

func downBF16(t *testing.T, b cuda.BF16) []float32 {
	t.Helper()
	f := alloc(t, b.N)
	must(t, dev.FromBF16(f, b))
	return down(t, f)
}

// The bf16-gradient kernels against the same f32 formulas over the
// bf16-rounded inputs, each result rounded to bf16 once where the kernel
// stores bf16: exact (0 tolerance) for the elementwise ones, 1e-6
// relative for AdamW (as TestAdamW), 1e-10 for the float64 sum of squares
// (summation order only).
func TestBF16GradKernels(t *testing.T) {
	const n = 5001
	a, ra := upBF16(t, randn(n, 80))
	b, rb := upBF16(t, randn(n, 81))

	f := up(t, randn(n, 82))
	want := down(t, f)
	for i := range want {
		want[i] += rb[i]
	}
	must(t, dev.AddBF16ToF32(f, b))
	near(t, "AddBF16ToF32", down(t, f), want, 0, 0)

	must(t, dev.AddBF16(a, b))
	for i := range ra {
		ra[i] = bf16(ra[i] + rb[i])
	}
	near(t, "AddBF16", downBF16(t, a), ra, 0, 0)

	must(t, dev.ScaleBF16(a, 0.37))
	for i := range ra {
		ra[i] = bf16(ra[i] * 0.37)
	}
	near(t, "ScaleBF16", downBF16(t, a), ra, 0, 0)

	got, err := dev.SumSquaresBF16(a, b)
	must(t, err)
	if w := kernels.SumSquares(ra) + kernels.SumSquares(rb); math.Abs(got-w) > 1e-10*w {
		t.Errorf("SumSquaresBF16 = %.12g, CPU %.12g", got, w)
	}

	w := randn(n, 83)
	gw, gm, gv := up(t, w), alloc(t, n), alloc(t, n)
	m, v := make([]float32, n), make([]float32, n)
	s := kernels.AdamWScalars{B1: 0.9, B2: 0.999, Eps: 1e-8, Decay: 1 - 1e-4, Step: 1e-3 / 0.1, RBC2: float32(1 / math.Sqrt(1-0.999))}
	must(t, dev.AdamWBF16Grad(gw, b, gm, gv, s))
	s.Apply(w, rb, m, v)
	near(t, "AdamWBF16Grad weights", down(t, gw), w, 1e-7, 1e-6)
	near(t, "AdamWBF16Grad v", down(t, gv), v, 1e-9, 1e-6)

	if err := dev.AddBF16(a, b.Slice(0, 10)); err == nil {
		t.Error("AddBF16 from a too-short src succeeded")
	}

	// AddRowsBF16: rows 3, 0 and 7 of a [9, 5] bf16 table get f32 rows
	// added, rounded once; an id outside the table is skipped; the other
	// rows keep their values
	const V, D = 9, 5
	tb, rt := upBF16(t, randn(V*D, 84))
	src := randn(4*D, 85)
	ids := []int32{3, 0, 7, 99}
	gi := alloc(t, len(ids))
	must(t, dev.CopyFromInt32(gi, ids))
	must(t, dev.AddRowsBF16(tb, up(t, src), gi, len(ids), D))
	for u, id := range ids[:3] {
		for c := range D {
			rt[int(id)*D+c] = bf16(rt[int(id)*D+c] + src[u*D+c])
		}
	}
	near(t, "AddRowsBF16", downBF16(t, tb), rt, 0, 0)
	if err := dev.AddRowsBF16(tb, up(t, src), gi, 5, D); err == nil {
		t.Error("AddRowsBF16 past its source succeeded")
	}

	// CopyBF16 of an odd-offset view (2-byte aligned)
	cp, err := dev.AllocBF16(7)
	must(t, err)
	defer dev.FreeBF16(cp)
	must(t, dev.CopyBF16(cp, tb.Slice(3, 10)))
	near(t, "CopyBF16", downBF16(t, cp), rt[3:10], 0, 0)
}
