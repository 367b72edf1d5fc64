//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// The inference reductions of infer_ops.go against their CPU twins.

func downInt32(t *testing.T, b cuda.Buf, n int) []int32 {
	t.Helper()
	x := make([]int32, n)
	must(t, dev.DownloadInt32(x, b))
	return x
}

func TestDownloadInt32(t *testing.T) {
	want := []int32{0, -1, 1 << 30, -(1 << 31), 7}
	b, err := dev.UploadInt32(want)
	must(t, err)
	defer dev.Free(b)
	if got := downInt32(t, b, len(want)); !slices.Equal(got, want) {
		t.Errorf("DownloadInt32 = %v, want %v", got, want)
	}
	if err := dev.DownloadInt32(make([]int32, 6), b); err == nil {
		t.Error("downloading 6 values from a 5-element buffer succeeded")
	}
}

// Tolerance: the device and the CPU both work in float64 (sums in another
// order, ~1e-15 relative) and round once to float32, so they may differ by
// one float32 ulp: 2e-7 relative, plus 1e-7 absolute for log-probs near 0.
func TestTokenLogProbs(t *testing.T) {
	for _, c := range []struct {
		rows, n int
		reason  string
	}{
		{5, 7, "row narrower than a warp"},
		{9, 1000, "width not a multiple of the block"},
		{4, 32000, "vocabulary-sized rows, many elements per thread"},
	} {
		rows, n := c.rows, c.n
		x := logits(rows, n, uint64(n)+40)
		// row 1: the maximum twice (first wins), the second copy later
		x[1*n+n/3], x[1*n+n-1] = 100, 100
		// row 2: all equal (arg-max 0) with one −Inf
		for i := 0; i < n; i++ {
			x[2*n+i] = 0.5
		}
		x[2*n+n/2] = float32(math.Inf(-1))
		targets := make([]int32, rows)
		for r := range targets {
			targets[r] = int32((r * 7919) % n)
		}
		targets[0] = -1                // padding
		targets[rows-1] = int32(n - 1) // last column
		targets[2] = int32(n / 2)      // the −Inf entry: log-prob −Inf
		targets[1] = int32(n / 3)      // row 1's maximum
		gx := up(t, x)
		gt, err := dev.UploadInt32(targets)
		must(t, err)
		glp, gam := alloc(t, rows), alloc(t, rows)
		must(t, dev.TokenLogProbs(glp, gam, gx, gt, rows, n))
		lp, am := down(t, glp), downInt32(t, gam, rows)
		want := make([]float32, rows)
		wantAM := make([]int32, rows)
		maxAbs, maxRel := 0.0, 0.0
		for r := 0; r < rows; r++ {
			row := x[r*n : (r+1)*n]
			l, a := kernels.LogProbAt(row, max(int(targets[r]), 0))
			wantAM[r] = int32(a)
			if targets[r] >= 0 {
				want[r] = float32(l)
			}
			if d := math.Abs(float64(lp[r]) - float64(want[r])); !math.IsInf(float64(want[r]), 0) {
				maxAbs = max(maxAbs, d)
				if want[r] != 0 {
					maxRel = max(maxRel, d/math.Abs(float64(want[r])))
				}
			}
		}
		near(t, "logp", lp, want, 1e-7, 2e-7)
		if !slices.Equal(am, wantAM) {
			t.Errorf("n=%d (%s): argmax %v, want %v", n, c.reason, am, wantAM)
		}
		t.Logf("n=%d (%s): log-prob max |Δ| %.3g, max rel %.3g", n, c.reason, maxAbs, maxRel)
		if am[1] != int32(n/3) && n > 3 {
			t.Errorf("n=%d: tied maximum: argmax %d, want the first (%d)", n, am[1], n/3)
		}
		if lp[0] != 0 {
			t.Errorf("n=%d: padding row log-prob %v, want 0", n, lp[0])
		}

		// argmax is optional.
		must(t, dev.Zero(glp))
		must(t, dev.TokenLogProbs(glp, cuda.Buf{}, gx, gt, rows, n))
		near(t, "logp without argmax", down(t, glp), want, 1e-7, 2e-7)
		dev.Free(gt)
	}
	gx, gt, glp := alloc(t, 10), alloc(t, 2), alloc(t, 2)
	for _, c := range []struct {
		rows, n int
		reason  string
	}{
		{2, 6, "logits too short"},
		{3, 3, "targets and logp too short"},
		{0, 5, "no rows"},
	} {
		if err := dev.TokenLogProbs(glp, cuda.Buf{}, gx, gt, c.rows, c.n); err == nil {
			t.Errorf("TokenLogProbs(%d rows, n %d) succeeded: %s", c.rows, c.n, c.reason)
		}
	}
}

// Tolerance: per-row float64 sums in another order, so ~1e-15 relative per
// cosine; 1e-12 relative on the sum.
func TestRowCosineSum(t *testing.T) {
	const rows, n = 37, 300
	a, b := randn(rows*n, 50), randn(rows*n, 51)
	row := func(x []float32, r int) []float32 { return x[r*n : (r+1)*n] }
	for i := range n {
		row(b, 1)[i] = 3 * row(a, 1)[i] // parallel: 1
		row(b, 2)[i] = -row(a, 2)[i]    // opposite: −1
		row(a, 3)[i], row(b, 3)[i] = 0, 0
		row(a, 4)[i] = 0 // one zero row: 0
		row(b, 5)[i] = 0
	}
	for i := range n / 2 { // orthogonal halves: 0
		row(a, 6)[i], row(b, 6)[n-1-i] = 0, 0
	}
	var want float64
	for r := 0; r < rows; r++ {
		want += kernels.Cosine(row(a, r), row(b, r))
	}
	got, err := dev.RowCosineSum(up(t, a), up(t, b), rows, n)
	must(t, err)
	rel := math.Abs(got-want) / math.Abs(want)
	t.Logf("RowCosineSum %v, CPU %v: relative difference %.3g", got, want, rel)
	if rel > 1e-12 {
		t.Errorf("RowCosineSum = %v, want %v", got, want)
	}
	// Each special row alone, against its exact value.
	for _, c := range []struct {
		r      int
		want   float64
		reason string
	}{
		{1, 1, "b = 3a"}, {2, -1, "b = −a"}, {3, 1, "both rows zero"}, {4, 0, "a zero"}, {5, 0, "b zero"},
	} {
		ga, gb := up(t, row(a, c.r)), up(t, row(b, c.r))
		got, err := dev.RowCosineSum(ga, gb, 1, n)
		must(t, err)
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("row %d (%s): cosine %v, want %v", c.r, c.reason, got, c.want)
		}
	}
	if _, err := dev.RowCosineSum(up(t, a[:n]), up(t, b), 2, n); err == nil {
		t.Error("RowCosineSum with a one row short succeeded")
	}
}

// TopK must give exactly kernels.TopK's indices and values: a selection,
// no arithmetic, so no tolerance.
func TestTopK(t *testing.T) {
	ties := func(rows, n int, levels float32, seed uint64) []float32 {
		x := randn(rows*n, seed)
		for i := range x {
			x[i] = float32(math.Round(float64(x[i]*levels))) / levels
		}
		return x
	}
	for _, c := range []struct {
		name    string
		rows, n int
		k       int
		x       []float32
		reason  string
	}{
		{"random", 6, 1000, 10, logits(6, 1000, 60), "distinct values, n not a multiple of the block"},
		{"k1", 5, 777, 1, logits(5, 777, 61), "k = 1: the arg-max"},
		{"k=n", 3, 300, 300, logits(3, 300, 62), "k = n: a full sort"},
		{"k=n ties", 3, 300, 300, ties(3, 300, 2, 63), "a full sort with many equal values"},
		{"ties", 7, 1000, 50, ties(7, 1000, 1, 64), "few distinct values: the k-th value repeats"},
		{"ties k1", 4, 500, 1, ties(4, 500, 0.5, 65), "the maximum repeats"},
		{"tiny", 4, 5, 3, logits(4, 5, 66), "row narrower than a warp"},
		{"odd k", 3, 5000, 100, logits(3, 5000, 67), "k not a power of two"},
		{"vocab", 2, 32000, 1024, logits(2, 32000, 68), "a vocabulary row, k 1024"},
		{"large vocab", 1, 256000, 1024, logits(1, 256000, 69), "the widest vocabularies (Gemma/Nemotron-4)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && c.n > 100000 {
				t.Skip("long under the emulator")
			}
			x := c.x
			if c.name == "ties" { // specials: ±0 tie, ±Inf, a fully constant row
				x[0], x[1], x[2], x[3] = float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1))
				for i := 0; i < c.n; i++ {
					x[4*c.n+i] = 0
				}
				x[4*c.n+10] = float32(math.Copysign(0, -1))
			}
			wantIdx, wantVal := make([]int32, c.rows*c.k), make([]float32, c.rows*c.k)
			kernels.TopK(wantIdx, wantVal, x, c.rows, c.n, c.k)
			gi, gv := alloc(t, c.rows*c.k), alloc(t, c.rows*c.k)
			must(t, dev.TopK(gi, gv, up(t, x), c.rows, c.n, c.k))
			gotIdx, gotVal := downInt32(t, gi, c.rows*c.k), down(t, gv)
			for i := range wantIdx {
				if gotIdx[i] != wantIdx[i] || math.Float32bits(gotVal[i]) != math.Float32bits(wantVal[i]) {
					r, j := i/c.k, i%c.k
					t.Logf("x %v\ngot %v %v\nwant %v %v", x, gotIdx, gotVal, wantIdx, wantVal)
					t.Fatalf("%s: row %d entry %d: (%d, %v), want (%d, %v)", c.reason, r, j, gotIdx[i], gotVal[i], wantIdx[i], wantVal[i])
				}
			}
		})
	}
	gx, gi := alloc(t, 100), alloc(t, 100)
	for _, c := range []struct {
		rows, n, k int
		reason     string
	}{
		{1, 10, 11, "k > n"},
		{1, 10, 0, "k = 0"},
		{2, 100, 1, "x too short"},
		{1, 100, 101, "idx too short"},
		{1, 10000, dev.MaxTopK() + 1, "k beyond shared memory"},
	} {
		if err := dev.TopK(gi, gi, gx, c.rows, c.n, c.k); err == nil {
			t.Errorf("TopK(rows %d, n %d, k %d) succeeded: %s", c.rows, c.n, c.k, c.reason)
		}
	}
}

// TestTopKRandom checks many small random shapes, values drawn from a few
// levels (ties at every boundary), wide ranges of both signs, subnormals
// and infinities, against kernels.TopK.
func TestTopKRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(70, 71))
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32}
	for trial := range 40 {
		rows, n := 1+r.IntN(4), 1+r.IntN(3000)
		k := 1 + r.IntN(min(n, 600))
		x := make([]float32, rows*n)
		levels := 1 + r.IntN(20)
		for i := range x {
			switch mode := trial % 4; {
			case mode == 0: // few levels: many ties
				x[i] = float32(r.IntN(levels)) - float32(levels/2)
			case mode == 1: // magnitudes across the exponent range, both signs
				x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30)))
			case mode == 2 && r.IntN(10) == 0:
				x[i] = specials[r.IntN(len(specials))]
			default:
				x[i] = float32(r.NormFloat64() * 4)
			}
		}
		wantIdx, wantVal := make([]int32, rows*k), make([]float32, rows*k)
		kernels.TopK(wantIdx, wantVal, x, rows, n, k)
		gi, gv, gx := alloc(t, rows*k), alloc(t, rows*k), up(t, x)
		must(t, dev.TopK(gi, gv, gx, rows, n, k))
		gotIdx, gotVal := downInt32(t, gi, rows*k), down(t, gv)
		for i := range wantIdx {
			if gotIdx[i] != wantIdx[i] || math.Float32bits(gotVal[i]) != math.Float32bits(wantVal[i]) {
				t.Fatalf("trial %d (rows %d, n %d, k %d, mode %d): row %d entry %d: (%d, %v), want (%d, %v)",
					trial, rows, n, k, trial%4, i/k, i%k, gotIdx[i], gotVal[i], wantIdx[i], wantVal[i])
			}
		}
		dev.Free(gi)
		dev.Free(gv)
		dev.Free(gx)
	}
}

// BenchmarkTopK times the teacher top-k of distillation at a wide
// vocabulary on the device, and the host path it replaces (download the
// logits, kernels.TopK), as rows per second.
func BenchmarkTopK(b *testing.B) {
	rows, n, k := 256, 256000, 1024
	if cuda.Emulated() {
		rows = 2
	}
	x := randn(rows*n, 80)
	for i := range x {
		x[i] *= 4
	}
	gx, err := dev.Upload(x)
	must(b, err)
	gi, err := dev.Alloc(rows * k)
	must(b, err)
	gv, err := dev.Alloc(rows * k)
	must(b, err)
	defer func() { dev.Free(gx); dev.Free(gi); dev.Free(gv) }()
	b.Run("device", func(b *testing.B) {
		must(b, dev.TopK(gi, gv, gx, rows, n, k)) // warm-up (PTX JIT)
		must(b, dev.Sync())
		start := time.Now()
		for range b.N {
			must(b, dev.TopK(gi, gv, gx, rows, n, k))
		}
		must(b, dev.Sync())
		sec := time.Since(start).Seconds() / float64(b.N)
		b.ReportMetric(float64(rows)/sec, "rows/s")
		b.ReportMetric(float64(4*rows*n)/sec/1e9, "GB/s")
	})
	b.Run("host", func(b *testing.B) {
		host := make([]float32, rows*n)
		idx, val := make([]int32, rows*k), make([]float32, rows*k)
		start := time.Now()
		for range b.N {
			must(b, dev.Download(host, gx))
			kernels.TopK(idx, val, host, rows, n, k)
		}
		b.ReportMetric(float64(rows)/(time.Since(start).Seconds()/float64(b.N)), "rows/s")
	})
}
