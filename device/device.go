// Package device names where minitron computes — the CPU or a CUDA GPU —
// and parses the names users give for it. Every library option and CLI
// flag that picks a device goes through Parse, so the accepted spellings,
// the error for an unknown one and the error of a binary built without
// CUDA are the same everywhere.
package device

import (
	"fmt"
	"strings"
)

// Kind is a device: CPU or CUDA. The zero value is the CPU.
type Kind string

const (
	CPU  Kind = "cpu"
	CUDA Kind = "cuda" // GPU 0, through the CUDA backend (build tag minitron_cuda)
)

// Parse reads a device name, case-insensitively; "" is the CPU. It does not
// check that this binary can run the device: see Kind.Check.
func Parse(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case "", CPU:
		return CPU, nil
	case CUDA:
		return CUDA, nil
	}
	return CPU, fmt.Errorf("device %q: want cpu or cuda", s)
}

// ParseBuilt is Parse followed by Check: the device, or why this binary
// cannot use it.
func ParseBuilt(s string) (Kind, error) {
	k, err := Parse(s)
	if err == nil {
		err = k.Check()
	}
	return k, err
}

// Check reports whether this binary can run on k: CUDA needs a binary
// built with the CUDA backend (cuda.ErrNotBuilt otherwise). Whether a GPU
// is present is found out when the device is opened.
func (k Kind) Check() error {
	if k == CUDA {
		return cudaBuilt()
	}
	return nil
}

// IsCUDA reports whether k is the GPU.
func (k Kind) IsCUDA() bool { return k == CUDA }

// String is the device's name ("cpu" for the zero value).
func (k Kind) String() string {
	if k == "" {
		return string(CPU)
	}
	return string(k)
}
