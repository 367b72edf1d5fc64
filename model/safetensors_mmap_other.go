//go:build !unix

package model

import (
	"fmt"
	"os"
)

// mapFile reads the whole file where mmap is unavailable.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("%s: file too small for a safetensors header (%d bytes)", path, len(data))
	}
	return data, func() error { return nil }, nil
}
