package kernels

// parMinFlops is the product size (m·n·k) below which splitting a matrix
// product over goroutines costs more than it saves.
const parMinFlops = 1 << 18

// ParSgemm is Sgemm split over Workers() goroutines, each calling a
// single-threaded BLAS on a block of C's columns (or rows when C is narrow).
// It assumes OpenBLAS runs with one thread (SetBLASThreads(1)).
func ParSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w := Workers()
	if w <= 1 || m*n*k < parMinFlops || m == 0 || n == 0 {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if n >= 16*w {
		// Split C's columns: op(B)'s columns. Blocks are multiples of 16 so
		// each one keeps BLAS's vector width.
		blocks := (n + 15) / 16
		ParallelFor(blocks, 1, func(lo, hi int) {
			c0, c1 := lo*16, min(hi*16, n)
			var bo int
			if transB {
				bo = c0 * ldb
			} else {
				bo = c0
			}
			Sgemm(transA, transB, m, c1-c0, k, alpha, a, lda, b[bo:], ldb, beta, c[c0:], ldc)
		})
		return
	}
	ParallelFor(m, 1, func(lo, hi int) {
		var ao int
		if transA {
			ao = lo
		} else {
			ao = lo * lda
		}
		Sgemm(transA, transB, hi-lo, n, k, alpha, a[ao:], lda, b, ldb, beta, c[lo*ldc:], ldc)
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
