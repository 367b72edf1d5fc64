//go:build !cgo || purego

package kernels

import "fmt"

// BLASCore names the matrix-product kernels (the pure-Go BLAS has one set).
func BLASCore() string { return "gonum" }

// SetBLASCore is only meaningful for OpenBLAS builds.
func SetBLASCore(name string) (string, error) {
	if name == "" {
		return BLASCore(), nil
	}
	return BLASCore(), fmt.Errorf("choosing a BLAS core needs the OpenBLAS build (this one uses gonum's pure-Go BLAS)")
}
