//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"math"
	"slices"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Row softmax family and the fused losses. Logits are scaled up (σ 4) so
// the distributions are peaked, as trained models' are. Tolerance 1e-4
// relative (row sums of up to 32k exps in another order) and 1e-6 absolute
// on gradients, whose entries are mostly tiny probabilities.

func logits(rows, n int, seed uint64) []float32 {
	x := randn(rows*n, seed)
	for i := range x {
		x[i] *= 4
	}
	return x
}

func TestSoftmaxRows(t *testing.T) {
	for _, n := range []int{7, 1000, 32000} {
		rows := 6
		x := logits(rows, n, uint64(n))
		for i := 0; i < n; i++ { // row 2 fully masked: softmax zeros, lse −Inf
			x[2*n+i] = float32(math.Inf(-1))
		}
		x[4*n+1] = float32(math.Inf(-1)) // one masked entry
		gx := up(t, x)

		want := make([]float32, len(x))
		kernels.SoftmaxRows(want, x, rows, n)
		got := alloc(t, len(x))
		must(t, dev.SoftmaxRows(got, gx, rows, n))
		near(t, "softmax", down(t, got), want, 1e-7, 1e-4)

		lse := make([]float32, rows)
		kernels.LogSumExpRows(lse, x, rows, n)
		glse := alloc(t, rows)
		must(t, dev.LogSumExpRows(glse, gx, rows, n))
		near(t, "logsumexp", down(t, glse), lse, 1e-5, 1e-5)

		kernels.LogSoftmaxRows(want, x, rows, n)
		must(t, dev.LogSoftmaxRows(got, gx, rows, n))
		near(t, "log-softmax", down(t, got), want, 1e-4, 1e-5)
	}
}

func TestLosses(t *testing.T) {
	const rows, n = 9, 5000
	s, te := logits(rows, n, 30), logits(rows, n, 31)
	targets := []int{0, 4999, -1, 17, 17, 3, -5, 2500, 1}
	gs, gt, gtarg := up(t, s), up(t, te), upInts(t, targets)
	const scale = 1.0 / rows
	for _, c := range []struct {
		name   string
		acc    bool
		alias  bool
		tau    float32
		reason string
	}{
		{"overwrite", false, false, 1, "plain gradient"},
		{"accumulate", true, false, 2, "adds into an existing gradient, temperature 2"},
		{"alias", false, true, 1, "gradient written over the student logits"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g0 := randn(rows*n, 32)
			loss := make([]float32, rows)
			gloss := alloc(t, rows)
			// gradRel: the reverse KL's gradient c·q·(log q − log p − KL)
			// cancels (e.g. −0.33 + 14.66 − 13.65), which amplifies the CPU
			// reference's own float32 row-sum error; checked against float64
			// on such an entry, the device kernel was the closer (1e-5 vs
			// 2e-4 relative).
			gradRel := 1e-4
			run := func(name string, cpu func(grad, loss []float32), gpu func(grad, st *cuda.Buf, loss *cuda.Buf) error) {
				t.Helper()
				grad := slices.Clone(g0)
				if c.alias {
					grad = slices.Clone(s)
				}
				cpu(grad, loss)
				gg := up(t, g0)
				st := gs
				if c.alias {
					gg = up(t, s)
					st = gg
				}
				must(t, gpu(&gg, &st, &gloss))
				near(t, name+" loss", down(t, gloss), loss, 1e-5, 1e-4)
				near(t, name+" grad", down(t, gg), grad, 1e-6, gradRel)
			}
			{
				run("ce", func(grad, loss []float32) {
					st := s
					if c.alias {
						st = grad
					}
					kernels.SoftmaxCrossEntropy(grad, st, targets, rows, n, scale, c.acc, loss)
				}, func(grad, st, loss *cuda.Buf) error {
					return dev.SoftmaxCrossEntropy(*grad, *st, gtarg, rows, n, scale, c.acc, *loss)
				})
			}
			run("kl forward", func(grad, loss []float32) {
				st := s
				if c.alias {
					st = grad
				}
				kernels.KLForward(grad, st, te, rows, n, c.tau, scale, c.acc, loss)
			}, func(grad, st, loss *cuda.Buf) error {
				return dev.KLForward(*grad, *st, gt, rows, n, c.tau, scale, c.acc, *loss)
			})
			gradRel = 5e-4
			run("kl reverse", func(grad, loss []float32) {
				st := s
				if c.alias {
					st = grad
				}
				kernels.KLReverse(grad, st, te, rows, n, c.tau, scale, c.acc, loss)
			}, func(grad, st, loss *cuda.Buf) error {
				return dev.KLReverse(*grad, *st, gt, rows, n, c.tau, scale, c.acc, *loss)
			})
			gradRel = 1e-4
			const k = 64
			idx, val := make([]int32, rows*k), make([]float32, rows*k)
			kernels.TopK(idx, val, te, rows, n, k)
			gidx, err := dev.UploadInt32(idx)
			must(t, err)
			t.Cleanup(func() { dev.Free(gidx) })
			gval := up(t, val)
			run("kl top-k", func(grad, loss []float32) {
				st := s
				if c.alias {
					st = grad
				}
				kernels.KLForwardTopK(grad, st, idx, val, k, rows, n, c.tau, scale, c.acc, loss)
			}, func(grad, st, loss *cuda.Buf) error {
				return dev.KLForwardTopK(*grad, *st, gidx, gval, k, rows, n, c.tau, scale, c.acc, *loss)
			})
		})
	}
}
