//go:build minitron_cuda || minitron_cudaemu

package device

// cudaBuilt: the CUDA backend (or its emulator) is compiled in.
func cudaBuilt() error { return nil }
