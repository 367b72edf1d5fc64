//go:build minitron_cuda || minitron_cudaemu

package cuda

import (
	"embed"
	"math"
)

//go:embed ptx/*.ptx
var ptxFS embed.FS

// Available reports whether this binary was built with the CUDA backend.
func Available() bool { return true }

// Device is one GPU (or, in minitron_cudaemu builds, the CPU emulator) with
// minitron's kernels loaded, a memory pool and a cuBLAS handle. Work runs in
// order on the default stream; methods return launch errors, and errors of
// earlier asynchronous work surface at the next Sync or copy back to the
// host.
type Device struct {
	backend
	pool    *Pool
	Name    string
	SMs     int
	CC      [2]int // compute capability
	MaxSmem int    // default dynamic shared memory per block, bytes
}

// Close frees the pool and the cuBLAS handle and releases the context.
func (d *Device) Close() error {
	unlock := d.lock()
	defer unlock()
	return d.closeLocked()
}

// Sync waits for all queued work and returns its first error.
func (d *Device) Sync() error {
	unlock := d.lock()
	defer unlock()
	return d.sync()
}

// Kernel parameters: gorgonia.org/cu's Launch copies every parameter as 8
// bytes, so each argument is packed into a uint64 whose low bytes hold the
// C value (int and float params read the low 4 bytes, little-endian).
func pp(b Buf) uint64     { return uint64(b.Ptr) }
func pi(v int) uint64     { return uint64(uint32(int32(v))) }
func pl(v int) uint64     { return uint64(int64(v)) }
func pf(v float32) uint64 { return uint64(math.Float32bits(v)) }
func pb(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// launch runs kernel name on grid × block threads with smem bytes of
// dynamic shared memory. The caller holds the lock.
func (d *Device) launch(name string, grid, block [3]int, smem int, args ...uint64) error {
	return d.launchRaw(name, grid, block, smem, args)
}

// grid1 is a 1-D grid-stride launch over n elements: 256 threads a block,
// at most 32 blocks per SM (the kernels loop).
func (d *Device) grid1(n int) [3]int {
	b := (n + 255) / 256
	if lim := 32 * max(d.SMs, 1); b > lim {
		b = lim
	}
	return [3]int{max(b, 1), 1, 1}
}

var block256 = [3]int{256, 1, 1}
