//go:build !unix

package model

// PeakRSSMB is unavailable off unix and returns 0.
func PeakRSSMB() float64 { return 0 }
