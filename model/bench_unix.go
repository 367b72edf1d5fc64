//go:build unix

package model

import "syscall"

// PeakRSSMB is this process's peak resident set size in MiB (getrusage
// ru_maxrss, which Linux reports in KiB); 0 when unavailable.
func PeakRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024
}
