//go:build !unix

package data

import "os"

// mapping is a read-only view of a whole file; without mmap it is read into memory.
type mapping struct{ data []byte }

func mapFile(path string) (mapping, error) {
	b, err := os.ReadFile(path)
	return mapping{data: b}, err
}

func (m *mapping) close() error { m.data = nil; return nil }
