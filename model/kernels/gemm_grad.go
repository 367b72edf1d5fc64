package kernels

// ParSgemmRows is Sgemm split over goroutines by blocks of C's rows (the
// rows of op(A)), taken dynamically. The backward pass's products are often
// tall (lm_head's weight gradient is [vocab, hidden]) or have a big A (the
// logits' gradient): splitting C's columns, as ParSgemm does, makes every
// block re-pack all of A, while row blocks each pack only their share of A.
// It assumes OpenBLAS runs with one thread (SetBLASThreads(1)).
func ParSgemmRows(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	w := Workers()
	if w <= 1 || m*n*k < parMinFlops || m < 32 || n == 0 {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	nb := min(4*w, m/16)
	blk := ((m+nb-1)/nb + 15) &^ 15
	nb = (m + blk - 1) / blk
	parallelTasks(nb, func(_, t int) {
		r0, r1 := t*blk, min((t+1)*blk, m)
		ao := r0 * lda
		if transA {
			ao = r0
		}
		Sgemm(transA, transB, r1-r0, n, k, alpha, a[ao:], lda, b, ldb, beta, c[r0*ldc:], ldc)
	})
}
