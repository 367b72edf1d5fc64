//go:build minitron_cuda

package gpu

// The CUDA build reduces the engine's device buffers through NCCL.
import _ "github.com/minitron-dev/minitron/comm/nccl"
