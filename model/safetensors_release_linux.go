//go:build linux

package model

import (
	"os"
	"syscall"
)

// releasePages tells the kernel we no longer need data[begin:end) of a
// read-only shared file mapping. The pages leave our resident set (they are
// re-read from the page cache or disk if touched again), which is what
// keeps streaming a checkpoint larger than RAM from growing RSS.
func releasePages(data []byte, begin, end int64) { advise(data, begin, end, syscall.MADV_DONTNEED) }

// prefetchPages starts reading data[begin:end) in the background, so a
// streaming forward pass can overlap the next layer's disk reads with the
// current layer's compute.
func prefetchPages(data []byte, begin, end int64) { advise(data, begin, end, syscall.MADV_WILLNEED) }

func advise(data []byte, begin, end int64, advice int) {
	ps := int64(os.Getpagesize())
	begin &^= ps - 1
	end = min((end+ps-1)&^(ps-1), int64(len(data)))
	if begin >= end {
		return
	}
	_ = syscall.Madvise(data[begin:end], advice)
}
