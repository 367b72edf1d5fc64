//go:build !cgo || purego

package kernels

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

const blasBackend = "gonum (pure Go)"

var impl gonum.Implementation

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	impl.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SetBLASThreads is a no-op for the pure-Go BLAS, which schedules its own goroutines.
func SetBLASThreads(n int) {}

// BLASThreads reports 1 for the pure-Go BLAS.
func BLASThreads() int { return 1 }
