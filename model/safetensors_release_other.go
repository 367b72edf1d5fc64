//go:build !linux

package model

// releasePages is a no-op where madvise is not wired up.
func releasePages(data []byte, begin, end int64) {}

// prefetchPages is a no-op where madvise is not wired up.
func prefetchPages(data []byte, begin, end int64) {}
