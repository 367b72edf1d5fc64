//go:build minitron_cuda

package cuda

import (
	"embed"
	"fmt"
	"math"
	"path"
	"runtime"
	"unsafe"

	// Imported for its init: it must run before gorgonia.org/cu's (see its
	// doc), so a machine without a GPU gets a clear message or a clean skip.
	_ "github.com/minitron-dev/minitron/model/kernels/cuda/internal/gpuprobe"
	"gorgonia.org/cu"
)

//go:embed ptx/*.ptx
var ptxFS embed.FS

// Available reports whether this binary was built with the CUDA backend.
func Available() bool { return true }

// Device is one GPU with minitron's kernels loaded, a memory pool and a
// cuBLAS handle. Work runs in order on the default stream; methods return
// launch errors, and errors of earlier asynchronous work surface at the next
// Sync or copy back to the host.
type Device struct {
	dev     cu.Device
	ctx     cu.CUContext
	mods    []cu.Module
	fns     map[string]cu.Function
	pool    *Pool
	blas    *blasHandle
	Name    string
	SMs     int
	CC      [2]int // compute capability
	MaxSmem int    // default dynamic shared memory per block, bytes
}

// Open retains the primary context of GPU ordinal, loads the embedded PTX
// modules and creates a cuBLAS handle with TF32 tensor-op math.
func Open(ordinal int) (*Device, error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: counting devices: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("cuda: device %d does not exist (%d device(s))", ordinal, n)
	}
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return nil, fmt.Errorf("cuda: retaining the primary context of device %d: %w", ordinal, err)
	}
	d := &Device{dev: dev, ctx: ctx, fns: map[string]cu.Function{}}
	d.pool = newPool(d)
	unlock := d.lock()
	defer unlock()
	d.Name, _ = dev.Name()
	d.SMs, _ = dev.Attribute(cu.MultiprocessorCount)
	d.CC[0], _ = dev.Attribute(cu.ComputeCapabilityMajor)
	d.CC[1], _ = dev.Attribute(cu.ComputeCapabilityMinor)
	d.MaxSmem, _ = dev.Attribute(cu.MaxSharedMemoryPerBlock)
	if err := d.loadModules(); err != nil {
		d.closeLocked()
		return nil, err
	}
	if d.blas, err = newBlas(); err != nil {
		d.closeLocked()
		return nil, err
	}
	return d, nil
}

// lock pins the calling goroutine to its OS thread and makes the device's
// context current there; call the returned func when done.
func (d *Device) lock() func() {
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		// Only fails for a destroyed context; the next call reports it.
		_ = err
	}
	return runtime.UnlockOSThread
}

func (d *Device) loadModules() error {
	ents, err := ptxFS.ReadDir("ptx")
	if err != nil {
		return fmt.Errorf("cuda: embedded PTX: %w", err)
	}
	for _, e := range ents {
		src, err := ptxFS.ReadFile(path.Join("ptx", e.Name()))
		if err != nil {
			return err
		}
		// cuModuleLoadData wants a NUL-terminated PTX string.
		mod, err := cu.LoadData(string(src) + "\x00")
		if err != nil {
			return fmt.Errorf("cuda: loading %s (PTX for compute_80; the driver must be CUDA 11.8 or newer and the GPU sm_80 or newer): %w", e.Name(), err)
		}
		d.mods = append(d.mods, mod)
		for _, name := range ptxEntries(string(src)) {
			fn, err := mod.Function(name)
			if err != nil {
				return fmt.Errorf("cuda: %s: function %s: %w", e.Name(), name, err)
			}
			d.fns[name] = fn
		}
	}
	return nil
}

// Close frees the pool and the cuBLAS handle and releases the context.
func (d *Device) Close() error {
	unlock := d.lock()
	defer unlock()
	return d.closeLocked()
}

func (d *Device) closeLocked() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	keep(cu.Synchronize())
	if d.blas != nil {
		keep(d.blas.close())
		d.blas = nil
	}
	keep(d.pool.trim())
	for _, m := range d.mods {
		keep(m.Unload())
	}
	d.mods = nil
	keep(d.dev.ReleasePrimaryCtx())
	return first
}

// Sync waits for all queued work and returns its first error.
func (d *Device) Sync() error {
	unlock := d.lock()
	defer unlock()
	return cu.Synchronize()
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
	fn, ok := d.fns[name]
	if !ok {
		return fmt.Errorf("cuda: kernel %s is not in the embedded PTX (run make ptx)", name)
	}
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	if err := fn.Launch(grid[0], grid[1], grid[2], block[0], block[1], block[2], smem, cu.Stream{}, params); err != nil {
		return fmt.Errorf("cuda: launching %s (grid %v block %v smem %d): %w", name, grid, block, smem, err)
	}
	return nil
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
