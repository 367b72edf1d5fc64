package kernels

// parMinFlops is the product size (m·n·k) below which splitting a matrix
// product over goroutines costs more than it saves.
const parMinFlops = 1 << 18

// ParSgemm is Sgemm split over Workers() goroutines, each calling a
// single-threaded BLAS on a block of C's columns (or rows when C is narrow).
// It assumes OpenBLAS runs with one thread (SetBLASThreads(1)).
func ParSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ParSgemmEpi(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nil)
}

// ParSgemmEpi is ParSgemm that calls epi(r0, r1, c0, c1) on each block of C
// as soon as the goroutine that computed it is done, while the block is
// still in cache: fusing an elementwise step (an activation) into the
// product saves a pass over C through memory. Blocks are disjoint and cover
// C; epi may run concurrently on different blocks.
func ParSgemmEpi(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, epi func(r0, r1, c0, c1 int)) {
	w := Workers()
	if w <= 1 || m*n*k < parMinFlops || m == 0 || n == 0 {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		if epi != nil && m > 0 && n > 0 {
			epi(0, m, 0, n)
		}
		return
	}
	if n >= 64*w {
		// Split C's columns (op(B)'s rows for x·Wᵀ) into blocks of a
		// multiple of 16 columns, a few per worker, taken dynamically.
		nb := min(4*w, n/64)
		blk := ((n+nb-1)/nb + 15) &^ 15
		nb = (n + blk - 1) / blk
		parallelTasks(nb, func(_, t int) {
			c0, c1 := t*blk, min((t+1)*blk, n)
			bo := c0
			if transB {
				bo = c0 * ldb
			}
			Sgemm(transA, transB, m, c1-c0, k, alpha, a, lda, b[bo:], ldb, beta, c[c0:], ldc)
			if epi != nil {
				epi(0, m, c0, c1)
			}
		})
		return
	}
	ParallelFor(m, 16, func(lo, hi int) {
		ao := lo * lda
		if transA {
			ao = lo
		}
		Sgemm(transA, transB, hi-lo, n, k, alpha, a[ao:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		if epi != nil {
			epi(lo, hi, 0, n)
		}
	})
}

// ParMatMulT is MatMulT (y[m,n] = x[m,k]·wᵀ, w stored [n,k]) split over
// goroutines like ParSgemm.
func ParMatMulT(y, x, w []float32, m, n, k int, accumulate bool) {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	ParSgemm(false, true, m, n, k, 1, x, k, w, k, beta, y, n)
}

// ParMatMulTEpi is ParMatMulT with a fused epilogue (see ParSgemmEpi).
func ParMatMulTEpi(y, x, w []float32, m, n, k int, accumulate bool, epi func(r0, r1, c0, c1 int)) {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	ParSgemmEpi(false, true, m, n, k, 1, x, k, w, k, beta, y, n, epi)
}
