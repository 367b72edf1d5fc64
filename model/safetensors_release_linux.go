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
func releasePages(data []byte, begin, end int64) {
	ps := int64(os.Getpagesize())
	begin &^= ps - 1
	end = min((end+ps-1)&^(ps-1), int64(len(data)))
	if begin >= end {
		return
	}
	_ = syscall.Madvise(data[begin:end], syscall.MADV_DONTNEED)
}
