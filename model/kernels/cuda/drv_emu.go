//go:build minitron_cudaemu && !minitron_cuda

package cuda

// The CPU emulator backend (build tag minitron_cudaemu): csrc/*.cu compiled
// as C++ against emu.h and run on fibers, device memory in C heap
// allocations, cuBLAS replaced by a column-major reference GEMM that
// rounds its inputs to TF32 when TF32 is on. It runs the parity tests, the
// device trainer's tests and the argument packing of every launch on a
// machine without a GPU; it says nothing about speed.

/*
#cgo CXXFLAGS: -O2 -std=c++17
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int emu_has(const char *name);
int emu_launch(const char *name, const char *classes, const uint64_t *args, int nargs,
	unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem);

static uintptr_t emu_alloc(size_t n) { return (uintptr_t)aligned_alloc(256, (n + 255) & ~(size_t)255); }
static void emu_free(uintptr_t p) { free((void *)p); }
static void emu_htod(uintptr_t dst, const void *src, size_t n) { memcpy((void *)dst, src, n); }
static void emu_dtoh(void *dst, uintptr_t src, size_t n) { memcpy(dst, (const void *)src, n); }
static void emu_dtod(uintptr_t dst, uintptr_t src, size_t n) { memmove((void *)dst, (const void *)src, n); }
static void emu_zero(uintptr_t p, size_t n) { memset((void *)p, 0, n); }
static float *emu_f32(uintptr_t p) { return (float *)p; }

static float tf32(float x) {
	uint32_t u;
	memcpy(&u, &x, 4);
	u += 0xfff + ((u >> 13) & 1);
	u &= ~(uint32_t)0x1fff;
	memcpy(&x, &u, 4);
	return x;
}
static float bf16f(const uint16_t *p, long i) {
	uint32_t u = (uint32_t)p[i] << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static uint16_t tobf16(float x) {
	uint32_t u;
	memcpy(&u, &x, 4);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

// cublasSgemm's column-major semantics: C = alpha·op(A)·op(B) + beta·C, C
// not read when beta is 0. elem 0: f32 inputs (rounded to TF32 when tf
// is set), 1: bf16 inputs, 2: bf16 inputs and a bf16 C (the sum in f32,
// rounded to nearest even once on the store, as GemmEx with
// CUBLAS_COMPUTE_32F and a CUDA_R_16BF C).
static void emu_gemm(int ta, int tb, int m, int n, int k, float alpha, uintptr_t A, int lda,
	uintptr_t B, int ldb, float beta, uintptr_t Cp, int ldc, int tf, int elem) {
	float *C = (float *)Cp;
	uint16_t *Cb = (uint16_t *)Cp;
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++) {
			float acc = 0;
			for (int p = 0; p < k; p++) {
				long ia = ta ? p + (long)i * lda : i + (long)p * lda;
				long ib = tb ? j + (long)p * ldb : p + (long)j * ldb;
				float a, b;
				if (elem >= 1) {
					a = bf16f((const uint16_t *)A, ia);
					b = bf16f((const uint16_t *)B, ib);
				} else {
					a = ((const float *)A)[ia];
					b = ((const float *)B)[ib];
					if (tf) {
						a = tf32(a);
						b = tf32(b);
					}
				}
				acc += a * b;
			}
			long ic = i + (long)j * ldc;
			if (elem == 2) {
				Cb[ic] = tobf16(beta == 0 ? alpha * acc : alpha * acc + beta * bf16f(Cb, ic));
				continue;
			}
			float *c = &C[ic];
			*c = beta == 0 ? alpha * acc : alpha * acc + beta * *c;
		}
}
*/
import "C"

import (
	"fmt"
	"path"
	"unsafe"
)

type backend struct {
	classes map[string]string // kernel → parameter classes (from the PTX)
	tf32    bool
}

// Emulated reports whether kernels run on the CPU emulator
// (minitron_cudaemu builds) rather than a GPU.
func Emulated() bool { return true }

// Open returns the emulated device (ordinal 0 only).
func Open(ordinal int) (*Device, error) {
	if ordinal != 0 {
		return nil, fmt.Errorf("cuda: device %d does not exist (the emulator has one)", ordinal)
	}
	d := &Device{backend: backend{classes: map[string]string{}, tf32: true},
		Name: "CPU emulator (minitron_cudaemu)", SMs: 2, CC: [2]int{8, 0}, MaxSmem: 48 << 10}
	d.pool = newPool(d)
	ents, err := ptxFS.ReadDir("ptx")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		src, err := ptxFS.ReadFile(path.Join("ptx", e.Name()))
		if err != nil {
			return nil, err
		}
		for name, cls := range ptxParamClasses(string(src)) {
			cs := C.CString(name)
			ok := C.emu_has(cs) != 0
			C.free(unsafe.Pointer(cs))
			if !ok {
				return nil, fmt.Errorf("cuda: emulator: kernel %s of %s is not in emu_kernels.cc's table", name, e.Name())
			}
			d.classes[name] = cls
		}
	}
	return d, nil
}

func (d *Device) lock() func()       { return func() {} }
func (d *Device) closeLocked() error { return d.pool.trim() }
func (d *Device) sync() error        { return nil }
func (d *Device) memFree(p DevicePtr) error {
	C.emu_free(C.uintptr_t(p))
	return nil
}
func (d *Device) memInfo() (free, total int64) { return 0, 0 }

func (d *Device) memAlloc(bytes int64) (DevicePtr, error) {
	p := C.emu_alloc(C.size_t(bytes))
	if p == 0 {
		return 0, fmt.Errorf("cuda: emulator: out of host memory for %d bytes", bytes)
	}
	return DevicePtr(p), nil
}

func (d *Device) htod(dst DevicePtr, src unsafe.Pointer, bytes int64) error {
	C.emu_htod(C.uintptr_t(dst), src, C.size_t(bytes))
	return nil
}
func (d *Device) dtoh(dst unsafe.Pointer, src DevicePtr, bytes int64) error {
	C.emu_dtoh(dst, C.uintptr_t(src), C.size_t(bytes))
	return nil
}
func (d *Device) dtod(dst, src DevicePtr, bytes int64) error {
	C.emu_dtod(C.uintptr_t(dst), C.uintptr_t(src), C.size_t(bytes))
	return nil
}
func (d *Device) memset32(p DevicePtr, n int64) error {
	C.emu_zero(C.uintptr_t(p), C.size_t(4*n))
	return nil
}

func (d *Device) launchRaw(name string, grid, block [3]int, smem int, args []uint64) error {
	cls, ok := d.classes[name]
	if !ok {
		return fmt.Errorf("cuda: kernel %s is not in the embedded PTX (run make ptx)", name)
	}
	if len(cls) != len(args) {
		return fmt.Errorf("cuda: kernel %s takes %d parameters, the launch passes %d", name, len(cls), len(args))
	}
	for _, v := range grid {
		if v <= 0 {
			return fmt.Errorf("cuda: launching %s: grid %v", name, grid)
		}
	}
	if block[0]*block[1]*block[2] > 1024 || block[0] <= 0 || block[1] <= 0 || block[2] <= 0 {
		return fmt.Errorf("cuda: launching %s: block %v", name, block)
	}
	if smem > d.MaxSmem {
		return fmt.Errorf("cuda: launching %s: %d bytes of shared memory", name, smem)
	}
	cn, cc := C.CString(name), C.CString(cls)
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cc))
	var ap *C.uint64_t
	if len(args) > 0 {
		ap = (*C.uint64_t)(unsafe.Pointer(&args[0]))
	}
	switch r := C.emu_launch(cn, cc, ap, C.int(len(args)), C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]),
		C.uint(block[0]), C.uint(block[1]), C.uint(block[2]), C.uint(smem)); r {
	case 0:
		return nil
	case 3:
		return fmt.Errorf("cuda: emulator: kernel %s deadlocked at a barrier", name)
	default:
		return fmt.Errorf("cuda: emulator: launching %s failed (%d)", name, int(r))
	}
}

func cb(v bool) C.int {
	if v {
		return 1
	}
	return 0
}

func (d *Device) blasSgemm(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) error {
	C.emu_gemm(cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha), C.uintptr_t(a), C.int(lda),
		C.uintptr_t(b), C.int(ldb), C.float(beta), C.uintptr_t(c), C.int(ldc), cb(d.tf32), 0)
	return nil
}

func (d *Device) blasSgemmStrided(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda, sa int, b DevicePtr, ldb, sb int, beta float32, c DevicePtr, ldc, sc, batch int) error {
	for i := 0; i < batch; i++ {
		off := func(p DevicePtr, s int) DevicePtr { return p + DevicePtr(4*i*s) }
		if err := d.blasSgemm(ta, tb, m, n, k, alpha, off(a, sa), lda, off(b, sb), ldb, beta, off(c, sc), ldc); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) blasGemmBF16(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) error {
	C.emu_gemm(cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha), C.uintptr_t(a), C.int(lda),
		C.uintptr_t(b), C.int(ldb), C.float(beta), C.uintptr_t(c), C.int(ldc), 0, 1)
	return nil
}

func (d *Device) blasGemmBF16Out(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) error {
	C.emu_gemm(cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha), C.uintptr_t(a), C.int(lda),
		C.uintptr_t(b), C.int(ldb), C.float(beta), C.uintptr_t(c), C.int(ldc), 0, 2)
	return nil
}

// SetTF32 turns the emulated TF32 rounding of GEMM inputs on or off.
func (d *Device) SetTF32(on bool) error {
	d.tf32 = on
	return nil
}

// BLASVersion is 0: the emulator has no cuBLAS.
func (d *Device) BLASVersion() int { return 0 }

// BLASLibrary names the GEMM implementation.
func (d *Device) BLASLibrary() string { return "emulator reference GEMM" }

// HostView is b's memory as a Go slice: the emulator's device memory is
// host memory (a communicator reduces it as host buffers). On a GPU it is
// nil.
func HostView(b Buf) []float32 {
	if b.N == 0 {
		return []float32{}
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(C.emu_f32(C.uintptr_t(b.Ptr)))), b.N)
}

// HostViewBF16 is b's memory as 16-bit words (see HostView).
func HostViewBF16(b BF16) []uint16 {
	if b.N == 0 {
		return []uint16{}
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(C.emu_f32(C.uintptr_t(b.Ptr)))), b.N)
}
