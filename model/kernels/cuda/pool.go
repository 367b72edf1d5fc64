//go:build minitron_cuda || minitron_cudaemu

package cuda

import (
	"fmt"
	"unsafe"
)

// DevicePtr is an address in device memory.
type DevicePtr uintptr

// Buf is a view of float32 (or int32) elements in device memory. A Buf from
// Alloc owns its allocation until Free; Slice and Off make views that must
// not be freed.
type Buf struct {
	Ptr DevicePtr
	N   int // elements of 4 bytes
}

// Off is the view from element lo to the end (like x[lo:]).
func (b Buf) Off(lo int) Buf { return b.Slice(lo, b.N) }

// Slice is the view of elements [lo, hi).
func (b Buf) Slice(lo, hi int) Buf {
	if lo < 0 || hi < lo || hi > b.N {
		panic(fmt.Sprintf("cuda: slice [%d:%d] of a %d-element buffer", lo, hi, b.N))
	}
	return Buf{Ptr: b.Ptr + DevicePtr(4*lo), N: hi - lo}
}

// IsNil reports a zero Buf (an absent optional argument, like a nil slice).
func (b Buf) IsNil() bool { return b.Ptr == 0 }

// Pool hands out device memory from size-class free lists over cuMemAlloc,
// so a training step's buffers are reused without a cuMemAlloc/cuMemFree
// pair (which synchronise the device) per use. Classes are powers of two up
// to 64 MiB and multiples of 64 MiB beyond, so at most half (small) or
// 64 MiB (large) of a block is wasted.
type Pool struct {
	d      *Device
	free   map[int64][]DevicePtr
	size   map[DevicePtr]int64 // class of each live allocation
	InUse  int64               // bytes handed out
	Cached int64               // bytes in free lists
	Peak   int64               // largest InUse + Cached seen
}

func newPool(d *Device) *Pool {
	return &Pool{d: d, free: map[int64][]DevicePtr{}, size: map[DevicePtr]int64{}}
}

// Pool returns the device's memory pool (for its statistics).
func (d *Device) Pool() *Pool { return d.pool }

// Alloc returns n float32 elements of device memory (contents undefined).
func (d *Device) Alloc(n int) (Buf, error) {
	unlock := d.lock()
	defer unlock()
	return d.alloc(n)
}

func (d *Device) alloc(n int) (Buf, error) {
	if n <= 0 {
		return Buf{}, fmt.Errorf("cuda: alloc of %d elements", n)
	}
	p := d.pool
	c := SizeClass(4 * int64(n))
	if l := p.free[c]; len(l) > 0 {
		ptr := l[len(l)-1]
		p.free[c] = l[:len(l)-1]
		p.Cached -= c
		p.InUse += c
		p.size[ptr] = c
		return Buf{Ptr: ptr, N: n}, nil
	}
	ptr, err := d.memAlloc(c)
	if err != nil {
		// Out of memory with blocks cached in other classes: give them back
		// to the driver and try once more.
		if p.Cached > 0 {
			if terr := p.trim(); terr == nil {
				ptr, err = d.memAlloc(c)
			}
		}
		if err != nil {
			free, total := d.memInfo()
			return Buf{}, fmt.Errorf("cuda: allocating %d bytes (pool: %d in use; device: %d of %d free): %w", c, p.InUse, free, total, err)
		}
	}
	p.size[ptr] = c
	p.InUse += c
	p.Peak = max(p.Peak, p.InUse+p.Cached)
	return Buf{Ptr: ptr, N: n}, nil
}

// Free returns a buffer from Alloc to the pool. Freeing a view or a zero
// Buf is an error.
func (d *Device) Free(b Buf) error {
	if b.IsNil() {
		return nil
	}
	p := d.pool
	c, ok := p.size[b.Ptr]
	if !ok {
		return fmt.Errorf("cuda: Free of %v, which is not a live allocation of this device", b.Ptr)
	}
	delete(p.size, b.Ptr)
	p.free[c] = append(p.free[c], b.Ptr)
	p.InUse -= c
	p.Cached += c
	return nil
}

// Trim returns the cached (freed) blocks to the driver.
func (d *Device) Trim() error {
	unlock := d.lock()
	defer unlock()
	return d.pool.trim()
}

func (p *Pool) trim() error {
	var first error
	for c, l := range p.free {
		for _, ptr := range l {
			if err := p.d.memFree(ptr); err != nil && first == nil {
				first = err
			}
			p.Cached -= c
		}
		delete(p.free, c)
	}
	return first
}

// Upload allocates a buffer holding a copy of host.
func (d *Device) Upload(host []float32) (Buf, error) {
	unlock := d.lock()
	defer unlock()
	b, err := d.alloc(max(len(host), 1))
	if err != nil {
		return Buf{}, err
	}
	b.N = len(host)
	if len(host) > 0 {
		if err := d.htod(b.Ptr, unsafe.Pointer(&host[0]), 4*int64(len(host))); err != nil {
			d.Free(b)
			return Buf{}, fmt.Errorf("cuda: upload of %d floats: %w", len(host), err)
		}
	}
	return b, nil
}

// UploadInt32 allocates a buffer holding a copy of host (token ids, targets,
// positions).
func (d *Device) UploadInt32(host []int32) (Buf, error) {
	return d.Upload(unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(host))), len(host)))
}

// UploadInts converts ids to int32 and uploads them; it fails on a value
// outside the int32 range.
func (d *Device) UploadInts(ids []int) (Buf, error) {
	v := make([]int32, len(ids))
	for i, id := range ids {
		if int(int32(id)) != id {
			return Buf{}, fmt.Errorf("cuda: value %d at index %d does not fit int32", id, i)
		}
		v[i] = int32(id)
	}
	return d.UploadInt32(v)
}

// CopyFrom copies host into b (len(host) ≤ b.N).
func (d *Device) CopyFrom(b Buf, host []float32) error {
	return toDevice(d, b.Ptr, b.N, host, "floats")
}

// Download copies the first len(host) elements of b to host (waiting for
// the work queued before it).
func (d *Device) Download(host []float32, b Buf) error {
	return toHost(d, host, b.Ptr, b.N, "floats")
}

// DownloadBF16 copies the first len(host) values of b to host as bfloat16
// bits (waiting for the work queued before it).
func (d *Device) DownloadBF16(host []uint16, b BF16) error {
	return toHost(d, host, b.Ptr, b.N, "bf16 values")
}

// UploadBF16 copies the bfloat16 bits host into b (len(host) ≤ b.N).
func (d *Device) UploadBF16(b BF16, host []uint16) error {
	return toDevice(d, b.Ptr, b.N, host, "bf16 values")
}

// toDevice copies host into the device buffer at ptr of room elements.
func toDevice[T float32 | uint16](d *Device, ptr DevicePtr, room int, host []T, what string) error {
	if len(host) > room {
		return fmt.Errorf("cuda: copying %d %s into a %d-element buffer", len(host), what, room)
	}
	if len(host) == 0 {
		return nil
	}
	unlock := d.lock()
	defer unlock()
	return d.htod(ptr, unsafe.Pointer(&host[0]), int64(unsafe.Sizeof(host[0]))*int64(len(host)))
}

// toHost copies the first len(host) elements of the device buffer at ptr
// (room elements) to host.
func toHost[T float32 | uint16](d *Device, host []T, ptr DevicePtr, room int, what string) error {
	if len(host) > room {
		return fmt.Errorf("cuda: downloading %d %s from a %d-element buffer", len(host), what, room)
	}
	if len(host) == 0 {
		return nil
	}
	unlock := d.lock()
	defer unlock()
	return d.dtoh(unsafe.Pointer(&host[0]), ptr, int64(unsafe.Sizeof(host[0]))*int64(len(host)))
}

// DownloadFloat64 copies n float64 values stored in b (2n elements).
func (d *Device) downloadFloat64(host []float64, b Buf) error {
	if 2*len(host) > b.N {
		return fmt.Errorf("cuda: downloading %d float64 from a %d-element buffer", len(host), b.N)
	}
	if len(host) == 0 {
		return nil
	}
	return d.dtoh(unsafe.Pointer(&host[0]), b.Ptr, 8*int64(len(host)))
}

// Zero sets the elements of b to 0 (float 0 and int 0 alike).
func (d *Device) Zero(b Buf) error {
	if b.N == 0 {
		return nil
	}
	unlock := d.lock()
	defer unlock()
	return d.memset32(b.Ptr, int64(b.N))
}

// CopyBuf copies src into dst (same length) on the device.
func (d *Device) CopyBuf(dst, src Buf) error {
	return d.copyOnDevice(dst.Ptr, dst.N, src.Ptr, src.N, 4, "copy", "elements")
}

// copyOnDevice copies srcN elements of size bytes from src to dst, which
// holds dstN (the same count); op and unit name them in the error.
func (d *Device) copyOnDevice(dst DevicePtr, dstN int, src DevicePtr, srcN int, size int64, op, unit string) error {
	if dstN != srcN {
		return fmt.Errorf("cuda: %s of %d %s into %d", op, srcN, unit, dstN)
	}
	if srcN == 0 {
		return nil
	}
	unlock := d.lock()
	defer unlock()
	return d.dtod(dst, src, size*int64(srcN))
}

// CopyFromInt32 copies host int32 values (token ids, targets) into b.
func (d *Device) CopyFromInt32(b Buf, host []int32) error {
	return d.CopyFrom(b, unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(host))), len(host)))
}
