// Package gpuprobe checks, before gorgonia.org/cu initialises, that the
// CUDA driver can be loaded and reports a device. gorgonia.org/cu's init
// calls cuInit and exits the process (status 1, message on stdout) when it
// fails, which would kill a test binary before any test could skip.
//
// Go initialises packages in import-path order among those whose imports
// are done (the Go 1.21 rule), and this package imports nothing of CUDA's,
// so "github.com/minitron-dev/..." runs its init before "gorgonia.org/cu".
// It loads libcuda.so.1 with dlopen (not linked), calls cuInit and
// cuDeviceGetCount, and when there is no usable GPU it ends the process
// itself: with status 0 and "skipped: ..." in a test binary (the parity tests
// then count as skipped), with status 1 and a message naming the build
// otherwise.
package gpuprobe
