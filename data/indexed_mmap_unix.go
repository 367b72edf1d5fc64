//go:build unix

package data

import (
	"fmt"
	"os"
	"syscall"
)

// mapping is a read-only view of a whole file.
type mapping struct {
	data   []byte
	mapped bool
}

// mapFile maps path read-only; an empty file gives an empty mapping (mmap
// rejects length 0).
func mapFile(path string) (mapping, error) {
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer
	// forever; this way it opens at once and fails the regular-file check.
	// It changes nothing for regular files.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return mapping{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return mapping{}, err
	}
	if !st.Mode().IsRegular() {
		return mapping{}, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 {
		return mapping{}, nil
	}
	if int64(int(size)) != size {
		return mapping{}, fmt.Errorf("%s: file of %d bytes too large to map", path, size)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return mapping{}, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return mapping{data: b, mapped: true}, nil
}

func (m *mapping) close() error {
	if !m.mapped {
		return nil
	}
	m.mapped = false
	b := m.data
	m.data = nil
	return syscall.Munmap(b)
}
