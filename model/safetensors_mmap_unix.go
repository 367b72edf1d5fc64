//go:build unix

package model

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps path read-only and shared, so pages come from the page cache
// on demand and a checkpoint larger than RAM can be streamed. syscall.Mmap
// needs no cgo.
func mapFile(path string) ([]byte, func() error, error) {
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer
	// forever; this way it opens at once and fails the regular-file check.
	// It changes nothing for regular files.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file", path)
	}
	if size < 8 {
		return nil, nil, fmt.Errorf("%s: file too small for a safetensors header (%d bytes)", path, size)
	}
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
