package kernels

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(X) is X or Xᵀ. op(A) is m×k, op(B) is k×n and C is m×n; lda, ldb and
// ldc are the row strides of the stored matrices.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// MatMulT computes y[m,n] = x[m,k]·wᵀ where w is stored [n,k] (the Hugging
// Face [out,in] layout). y is overwritten unless accumulate is set.
func MatMulT(y, x, w []float32, m, n, k int, accumulate bool) {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	Sgemm(false, true, m, n, k, 1, x, k, w, k, beta, y, n)
}

// BLASBackend names the matrix-product implementation compiled in.
func BLASBackend() string { return blasBackend }
