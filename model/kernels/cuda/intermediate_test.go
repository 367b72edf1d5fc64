//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
)

// The intermediate-state loss's row kernel against kernels.CosineLoss:
// widths below, at and above one block, a zero student row (the clamps) and
// a row parallel to its target (loss 0). Dot products are double on both
// sides; tolerance 1e-6 absolute, 1e-5 relative.
func TestCosineLoss(t *testing.T) {
	for _, c := range []struct {
		rows, n int
		reason  string
	}{
		{5, 7, "narrower than a warp"},
		{4, 256, "one block exactly"},
		{3, 2049, "several strides per thread"},
	} {
		y, tg := randn(c.rows*c.n, uint64(c.n)), randn(c.rows*c.n, uint64(c.n)+1)
		for i := 0; i < c.n; i++ {
			y[i] = 0                 // row 0: zero student state
			y[c.n+i] = 2 * tg[c.n+i] // row 1: parallel, loss 0
		}
		wantDy, wantLoss := make([]float32, len(y)), make([]float32, c.rows)
		kernels.CosineLoss(wantDy, wantLoss, y, tg, c.rows, c.n)
		dy, loss := alloc(t, len(y)), alloc(t, c.rows)
		must(t, dev.CosineLoss(dy, loss, up(t, y), up(t, tg), c.rows, c.n))
		near(t, c.reason+": loss", down(t, loss), wantLoss, 1e-6, 1e-5)
		near(t, c.reason+": dy", down(t, dy), wantDy, 1e-6, 1e-5)
	}
}
