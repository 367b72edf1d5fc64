//go:build !minitron_cuda && !minitron_cudaemu

package cuda

// Available reports whether this binary was built with the CUDA backend.
func Available() bool { return false }

// ErrNotBuilt is what `--device cuda` reports in a binary built without the
// cuda tag.
var ErrNotBuilt = errNotBuilt{}

type errNotBuilt struct{}

func (errNotBuilt) Error() string {
	return "this binary was built without CUDA; rebuild with -tags minitron_cuda (make build-cuda, needs the CUDA 11.8 headers: scripts/install-cuda-dev.sh)"
}
