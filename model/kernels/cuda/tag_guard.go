//go:build cuda && !minitron_cuda && !minitron_cudaemu

package cuda

// The cuda build tag is gorgonia's: it switches gorgonia.org/gorgonia to its
// own CUDA backend, which needs cuDNN (cudnn.h, not packaged by Debian) and
// would move the training graph's ops onto it. minitron's backend uses its
// own tag; this line stops a -tags cuda build with a message saying so.
var _ = "build with -tags minitron_cuda (make build-cuda), not -tags cuda: the cuda tag switches gorgonia to its cuDNN backend" + 0
