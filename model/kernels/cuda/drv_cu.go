//go:build minitron_cuda

package cuda

import (
	"fmt"
	"path"
	"runtime"
	"unsafe"

	// Imported for its init: it must run before gorgonia.org/cu's (see its
	// doc), so a machine without a GPU gets a clear message or a clean skip.
	_ "github.com/minitron-dev/minitron/model/kernels/cuda/internal/gpuprobe"
	"gorgonia.org/cu"
)

// backend is the real GPU: gorgonia.org/cu's driver API and cuBLAS.
type backend struct {
	dev  cu.Device
	ctx  cu.CUContext
	mods []cu.Module
	fns  map[string]cu.Function
	blas *blasHandle
}

// Emulated reports whether kernels run on the CPU emulator
// (minitron_cudaemu builds) rather than a GPU.
func Emulated() bool { return false }

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
	d := &Device{backend: backend{dev: dev, ctx: ctx, fns: map[string]cu.Function{}}}
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
		// cuModuleLoadData wants a NUL-terminated PTX string, which
		// LoadData's C.CString provides.
		mod, err := cu.LoadData(string(src))
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

func (d *Device) sync() error { return cu.Synchronize() }

func (d *Device) memAlloc(bytes int64) (DevicePtr, error) {
	p, err := cu.MemAlloc(bytes)
	return DevicePtr(p), err
}
func (d *Device) memFree(p DevicePtr) error { return cu.MemFree(cu.DevicePtr(p)) }
func (d *Device) memInfo() (free, total int64) {
	free, total, _ = cu.MemInfo()
	return free, total
}
func (d *Device) htod(dst DevicePtr, src unsafe.Pointer, bytes int64) error {
	return cu.MemcpyHtoD(cu.DevicePtr(dst), src, bytes)
}
func (d *Device) dtoh(dst unsafe.Pointer, src DevicePtr, bytes int64) error {
	return cu.MemcpyDtoH(dst, cu.DevicePtr(src), bytes)
}
func (d *Device) dtod(dst, src DevicePtr, bytes int64) error {
	return cu.MemcpyDtoD(cu.DevicePtr(dst), cu.DevicePtr(src), bytes)
}
func (d *Device) memset32(p DevicePtr, n int64) error { return cu.MemsetD32(cu.DevicePtr(p), 0, n) }

// launchRaw runs kernel name; the caller holds the lock.
func (d *Device) launchRaw(name string, grid, block [3]int, smem int, args []uint64) error {
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

// HostView is nil on a GPU: device memory is not host memory (see the
// emulator's).
func HostView(Buf) []float32 { return nil }

// HostViewBF16 is nil on a GPU (see HostView).
func HostViewBF16(BF16) []uint16 { return nil }
