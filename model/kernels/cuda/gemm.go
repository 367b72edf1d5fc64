//go:build minitron_cuda || minitron_cudaemu

package cuda

import "fmt"

// checkMat verifies that a row-major matrix of rows×cols with row stride ld
// fits in b.
func checkMat(name string, b Buf, rows, cols, ld int) error {
	if rows == 0 || cols == 0 {
		return nil
	}
	if ld < cols {
		return fmt.Errorf("cuda: %s: row stride %d < %d columns", name, ld, cols)
	}
	if need := (rows-1)*ld + cols; need > b.N {
		return fmt.Errorf("cuda: %s: %d×%d (stride %d) needs %d elements, buffer has %d", name, rows, cols, ld, need, b.N)
	}
	return nil
}

// storedShapes are the rows×columns of A and B as stored, for op(A) m×k
// and op(B) k×n.
func storedShapes(transA, transB bool, m, n, k int) (ar, ac, br, bc int) {
	ar, ac, br, bc = m, k, k, n
	if transA {
		ar, ac = k, m
	}
	if transB {
		br, bc = n, k
	}
	return
}

// Sgemm is kernels.Sgemm on the device: C = alpha·op(A)·op(B) + beta·C for
// row-major matrices (op(A) m×k, op(B) k×n, C m×n; strides lda, ldb, ldc).
// With TF32 on (the default) inputs are rounded to 10-bit mantissas inside
// the tensor cores, accumulation is f32.
func (d *Device) Sgemm(transA, transB bool, m, n, k int, alpha float32, a Buf, lda int, b Buf, ldb int, beta float32, c Buf, ldc int) error {
	if m == 0 || n == 0 {
		return nil
	}
	ar, ac, br, bc := storedShapes(transA, transB, m, n, k)
	if err := firstErr(checkMat("Sgemm A", a, ar, ac, lda), checkMat("Sgemm B", b, br, bc, ldb), checkMat("Sgemm C", c, m, n, ldc)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
	// row-major matrix read column-major is its transpose: swap A and B.
	return d.blasSgemm(transB, transA, n, m, k, alpha, b.Ptr, ldb, a.Ptr, lda, beta, c.Ptr, ldc)
}

// MatMulT is kernels.MatMulT on the device: y[m,n] = x[m,k]·wᵀ with w
// stored [n,k] (HF [out,in]); accumulate adds into y.
func (d *Device) MatMulT(y, x, w Buf, m, n, k int, accumulate bool) error {
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	return d.Sgemm(false, true, m, n, k, 1, x, k, w, k, beta, y, n)
}

// SgemmStridedBatched runs batch row-major Sgemms, matrix i at element
// offsets i·strideA, i·strideB, i·strideC.
func (d *Device) SgemmStridedBatched(transA, transB bool, m, n, k int, alpha float32, a Buf, lda, strideA int, b Buf, ldb, strideB int, beta float32, c Buf, ldc, strideC int, batch int) error {
	if m == 0 || n == 0 || batch == 0 {
		return nil
	}
	ar, ac, br, bc := storedShapes(transA, transB, m, n, k)
	last := batch - 1
	if err := firstErr(
		checkMat("batched A", a.Off(min(last*strideA, a.N)), ar, ac, lda),
		checkMat("batched B", b.Off(min(last*strideB, b.N)), br, bc, ldb),
		checkMat("batched C", c.Off(min(last*strideC, c.N)), m, n, ldc)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.blasSgemmStrided(transB, transA, n, m, k, alpha, b.Ptr, ldb, strideB, a.Ptr, lda, strideA, beta, c.Ptr, ldc, strideC, batch)
}

// GemmBF16 is Sgemm with bfloat16 inputs (a and b hold packed bf16 pairs:
// a bf16 matrix of r×c with stride ld occupies (r−1)·ld+c halves) and an
// f32 output, accumulated in f32 on tensor cores (cublasGemmEx).
func (d *Device) GemmBF16(transA, transB bool, m, n, k int, alpha float32, a BF16, lda int, b BF16, ldb int, beta float32, c Buf, ldc int) error {
	if m == 0 || n == 0 {
		return nil
	}
	ar, ac, br, bc := storedShapes(transA, transB, m, n, k)
	// checkMat counts elements, so a bf16 view's N serves as is
	if err := firstErr(checkMat("GemmBF16 A", Buf{N: a.N}, ar, ac, lda), checkMat("GemmBF16 B", Buf{N: b.N}, br, bc, ldb),
		checkMat("GemmBF16 C", c, m, n, ldc)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.blasGemmBF16(transB, transA, n, m, k, alpha, b.Ptr, ldb, a.Ptr, lda, beta, c.Ptr, ldc)
}

// GemmBF16Out is GemmBF16 with a bf16 C as well (bf16 weight gradients
// under mixed precision): the products accumulate in f32 and the result
// (alpha·AB + beta·C, C read as bf16) is rounded to bf16 once on the store.
func (d *Device) GemmBF16Out(transA, transB bool, m, n, k int, alpha float32, a BF16, lda int, b BF16, ldb int, beta float32, c BF16, ldc int) error {
	if m == 0 || n == 0 {
		return nil
	}
	ar, ac, br, bc := storedShapes(transA, transB, m, n, k)
	if err := firstErr(checkMat("GemmBF16Out A", Buf{N: a.N}, ar, ac, lda), checkMat("GemmBF16Out B", Buf{N: b.N}, br, bc, ldb),
		checkMat("GemmBF16Out C", Buf{N: c.N}, m, n, ldc)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.blasGemmBF16Out(transB, transA, n, m, k, alpha, b.Ptr, ldb, a.Ptr, lda, beta, c.Ptr, ldc)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
