//go:build minitron_cuda

package cuda

// A small cgo binding of cuBLAS: gorgonia.org/cu/blas takes Go slices
// (device pointers dressed as []float32), keeps its handle private (so
// cublasSetMathMode cannot be called on it) and has no GemmEx, so the
// products go through these few calls on raw device pointers instead.
//
// cuBLAS is loaded with dlopen, not linked: the binary then runs with
// whichever cuBLAS the GPU machine has (11.x from Debian, 12.x or 13.x from
// the CUDA toolkit or a PyTorch wheel). The calls used keep their ABI
// across those versions. MINITRON_CUBLAS names the library file to use;
// otherwise libcublas.so.11, .12, .13 and libcublas.so are tried in turn on
// the loader's path (LD_LIBRARY_PATH, ld.so.cache).

/*
#cgo LDFLAGS: -ldl
#cgo CFLAGS: -Wno-deprecated-declarations
#include <stdint.h>
#include <stdlib.h>
#include <dlfcn.h>
#include <cublas_v2.h>

static void *mt_lib;
static cublasStatus_t (*p_create)(cublasHandle_t *);
static cublasStatus_t (*p_destroy)(cublasHandle_t);
static cublasStatus_t (*p_setmath)(cublasHandle_t, cublasMath_t);
static cublasStatus_t (*p_version)(cublasHandle_t, int *);
static cublasStatus_t (*p_sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
	const float *, const float *, int, const float *, int, const float *, float *, int);
static cublasStatus_t (*p_sgemm_strided)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
	const float *, const float *, int, long long, const float *, int, long long, const float *, float *, int, long long, int);
static cublasStatus_t (*p_gemmex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
	const void *, const void *, cudaDataType, int, const void *, cudaDataType, int, const void *,
	void *, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

// mt_load opens path and resolves the symbols (the _v2 names are what
// cublas_v2.h's macros call). It returns NULL on success, else a message.
static const char *mt_load(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) return dlerror();
#define SYM(p, name) p = dlsym(h, name); if (!p) { dlclose(h); return "missing symbol " name; }
	SYM(p_create, "cublasCreate_v2")
	SYM(p_destroy, "cublasDestroy_v2")
	SYM(p_setmath, "cublasSetMathMode")
	SYM(p_version, "cublasGetVersion_v2")
	SYM(p_sgemm, "cublasSgemm_v2")
	SYM(p_sgemm_strided, "cublasSgemmStridedBatched")
	SYM(p_gemmex, "cublasGemmEx")
#undef SYM
	mt_lib = h;
	return NULL;
}

static int mt_create(uintptr_t *h) {
	cublasHandle_t hh;
	cublasStatus_t s = p_create(&hh);
	*h = (uintptr_t)hh;
	return (int)s;
}
static int mt_destroy(uintptr_t h) { return (int)p_destroy((cublasHandle_t)h); }
static int mt_tf32(uintptr_t h, int on) {
	return (int)p_setmath((cublasHandle_t)h, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}
static int mt_version(uintptr_t h, int *v) { return (int)p_version((cublasHandle_t)h, v); }

// Column-major cuBLAS calls; the Go side swaps operands for row-major.
static int mt_sgemm(uintptr_t h, int ta, int tb, int m, int n, int k, float alpha,
	uintptr_t a, int lda, uintptr_t b, int ldb, float beta, uintptr_t c, int ldc) {
	return (int)p_sgemm((cublasHandle_t)h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
		m, n, k, &alpha, (const float *)a, lda, (const float *)b, ldb, &beta, (float *)c, ldc);
}
static int mt_sgemm_strided(uintptr_t h, int ta, int tb, int m, int n, int k, float alpha,
	uintptr_t a, int lda, long long sa, uintptr_t b, int ldb, long long sb, float beta,
	uintptr_t c, int ldc, long long sc, int batch) {
	return (int)p_sgemm_strided((cublasHandle_t)h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
		m, n, k, &alpha, (const float *)a, lda, sa, (const float *)b, ldb, sb, &beta, (float *)c, ldc, sc, batch);
}
// bf16 inputs, f32 output and accumulation (tensor cores).
static int mt_gemm_bf16(uintptr_t h, int ta, int tb, int m, int n, int k, float alpha,
	uintptr_t a, int lda, uintptr_t b, int ldb, float beta, uintptr_t c, int ldc) {
	return (int)p_gemmex((cublasHandle_t)h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
		m, n, k, &alpha, (const void *)a, CUDA_R_16BF, lda, (const void *)b, CUDA_R_16BF, ldb, &beta,
		(void *)c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT_TENSOR_OP);
}
// mt_gemm_bf16_out: bf16 inputs and a bf16 C, accumulated in f32 (alpha
// and beta f32 as CUBLAS_COMPUTE_32F requires).
static int mt_gemm_bf16_out(uintptr_t h, int ta, int tb, int m, int n, int k, float alpha,
	uintptr_t a, int lda, uintptr_t b, int ldb, float beta, uintptr_t c, int ldc) {
	return (int)p_gemmex((cublasHandle_t)h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
		m, n, k, &alpha, (const void *)a, CUDA_R_16BF, lda, (const void *)b, CUDA_R_16BF, ldb, &beta,
		(void *)c, CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT_TENSOR_OP);
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"
)

var (
	cublasOnce sync.Once
	cublasPath string // the library that loaded
	cublasErr  error
)

// loadCublas dlopens cuBLAS once per process (see the comment above).
func loadCublas() error {
	cublasOnce.Do(func() {
		cands := []string{"libcublas.so.11", "libcublas.so.12", "libcublas.so.13", "libcublas.so"}
		if p := os.Getenv("MINITRON_CUBLAS"); p != "" {
			cands = []string{p}
		}
		var msgs []string
		for _, c := range cands {
			cs := C.CString(c)
			msg := C.mt_load(cs)
			C.free(unsafe.Pointer(cs))
			if msg == nil {
				cublasPath = c
				return
			}
			msgs = append(msgs, C.GoString(msg))
		}
		cublasErr = fmt.Errorf("cuda: cannot load cuBLAS (%s); install it or set MINITRON_CUBLAS to a libcublas.so file (find / -name 'libcublas.so*')", strings.Join(msgs, "; "))
	})
	return cublasErr
}

// BLASLibrary names the cuBLAS library file the process loaded.
func (d *Device) BLASLibrary() string { return cublasPath }

type blasHandle struct {
	h    C.uintptr_t
	tf32 bool
}

// cuBLAS status names (cublasStatus_t).
var blasStatus = map[int]string{
	1: "NOT_INITIALIZED", 3: "ALLOC_FAILED", 7: "INVALID_VALUE", 8: "ARCH_MISMATCH",
	11: "MAPPING_ERROR", 13: "EXECUTION_FAILED", 14: "INTERNAL_ERROR", 15: "NOT_SUPPORTED", 16: "LICENSE_ERROR",
}

func blasErr(op string, s C.int) error {
	if s == 0 {
		return nil
	}
	name := blasStatus[int(s)]
	if name == "" {
		name = fmt.Sprintf("status %d", int(s))
	}
	return fmt.Errorf("cuda: cuBLAS %s: CUBLAS_STATUS_%s", op, name)
}

func newBlas() (*blasHandle, error) {
	if err := loadCublas(); err != nil {
		return nil, err
	}
	var h C.uintptr_t
	if err := blasErr("create", C.mt_create(&h)); err != nil {
		return nil, err
	}
	b := &blasHandle{h: h}
	if err := b.setTF32(true); err != nil {
		C.mt_destroy(h)
		return nil, err
	}
	return b, nil
}

func (b *blasHandle) setTF32(on bool) error {
	v := C.int(0)
	if on {
		v = 1
	}
	if err := blasErr("set math mode", C.mt_tf32(b.h, v)); err != nil {
		return err
	}
	b.tf32 = on
	return nil
}

func (b *blasHandle) close() error { return blasErr("destroy", C.mt_destroy(b.h)) }

// SetTF32 turns TF32 tensor-op math for f32 products on (the default) or
// off (full f32 precision, several times slower on tensor-core GPUs).
func (d *Device) SetTF32(on bool) error {
	unlock := d.lock()
	defer unlock()
	return d.blas.setTF32(on)
}

// BLASVersion is cuBLAS's version number (e.g. 111103 for 11.11.3).
func (d *Device) BLASVersion() int {
	unlock := d.lock()
	defer unlock()
	var v C.int
	if C.mt_version(d.blas.h, &v) != 0 {
		return -1
	}
	return int(v)
}

func cb(v bool) C.int {
	if v {
		return 1
	}
	return 0
}

// Column-major cuBLAS calls (gemm.go maps the row-major API onto them).
func (d *Device) blasSgemm(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) error {
	return blasErr("Sgemm", C.mt_sgemm(d.blas.h, cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.uintptr_t(a), C.int(lda), C.uintptr_t(b), C.int(ldb), C.float(beta), C.uintptr_t(c), C.int(ldc)))
}

func (d *Device) blasSgemmStrided(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda, sa int, b DevicePtr, ldb, sb int, beta float32, c DevicePtr, ldc, sc, batch int) error {
	return blasErr("SgemmStridedBatched", C.mt_sgemm_strided(d.blas.h, cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.uintptr_t(a), C.int(lda), C.longlong(sa), C.uintptr_t(b), C.int(ldb), C.longlong(sb),
		C.float(beta), C.uintptr_t(c), C.int(ldc), C.longlong(sc), C.int(batch)))
}

func (d *Device) blasGemmBF16(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) error {
	return blasErr("GemmEx(bf16)", C.mt_gemm_bf16(d.blas.h, cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.uintptr_t(a), C.int(lda), C.uintptr_t(b), C.int(ldb), C.float(beta), C.uintptr_t(c), C.int(ldc)))
}

func (d *Device) blasGemmBF16Out(ta, tb bool, m, n, k int, alpha float32, a DevicePtr, lda int, b DevicePtr, ldb int, beta float32, c DevicePtr, ldc int) error {
	return blasErr("GemmEx(bf16 out)", C.mt_gemm_bf16_out(d.blas.h, cb(ta), cb(tb), C.int(m), C.int(n), C.int(k), C.float(alpha),
		C.uintptr_t(a), C.int(lda), C.uintptr_t(b), C.int(ldb), C.float(beta), C.uintptr_t(c), C.int(ldc)))
}
