//go:build !unix

package model

// releaseMapped is a no-op where madvise is unavailable.
func releaseMapped(src TensorSource, name string) {}
