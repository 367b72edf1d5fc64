//go:build unix

package model

import (
	"os"
	"syscall"
	"unsafe"
)

// releaseMapped drops the pages backing a memory-mapped tensor from this
// process (madvise MADV_DONTNEED on a read-only shared mapping: the page
// cache keeps them, RSS no longer counts them, a later read faults them back
// in). Streaming calls it after converting each tensor so resident memory
// stays near one layer's f32 weights instead of growing to the whole file.
// Pages shared with a neighbouring tensor are dropped too, which is harmless.
func releaseMapped(src TensorSource, name string) {
	rs, ok := src.(RawSource)
	if !ok {
		return
	}
	raw, _, err := rs.Raw(name)
	if err != nil || len(raw) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&raw[0]))
	lead := start & (page - 1) // the mapping starts on a page, so this stays inside it
	end := start + uintptr(len(raw))
	n := ((end+page-1)&^(page-1) - (start - lead))
	b := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&raw[0]), -int(lead))), n)
	_ = syscall.Madvise(b, syscall.MADV_DONTNEED)
}
