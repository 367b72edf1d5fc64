//go:build cgo && !purego

package kernels

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

// OpenBLAS built with DYNAMIC_ARCH (Debian's is) picks its kernel set when
// the library loads. These entry points only exist in such builds, so they
// are looked up at run time instead of linked.
static int mt_blas_reselect(void) {
	void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
	void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
	if (!quit || !init) return -1;
	quit();
	init();
	return 0;
}

static const char *mt_blas_corename(void) {
	char *(*name)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
	return name ? name() : "";
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// BLASCore names the kernel set OpenBLAS runs (e.g. "Haswell", "Cooperlake").
func BLASCore() string { return C.GoString(C.mt_blas_corename()) }

// SetBLASCore re-selects OpenBLAS's kernel set: "" keeps the current one
// (which honours OPENBLAS_CORETYPE), "auto" lets OpenBLAS detect the CPU
// ignoring OPENBLAS_CORETYPE, and any other value is an OpenBLAS core name
// (SkylakeX, Cooperlake, Haswell, Zen, …). It must be called before any
// matrix product is in flight (at start-up). The environment is left as it
// was. It returns the core now in use.
//
// Why: an environment may pin an older kernel set (OPENBLAS_CORETYPE=Haswell
// on an AVX-512 machine halves sgemm speed here: ~125 vs ~240 GFLOP/s per
// core), and minitron's speed depends on it.
func SetBLASCore(name string) (string, error) {
	if name == "" {
		return BLASCore(), nil
	}
	const key = "OPENBLAS_CORETYPE"
	old, had := os.LookupEnv(key)
	ck := C.CString(key)
	defer C.free(unsafe.Pointer(ck))
	if strings.EqualFold(name, "auto") {
		C.unsetenv(ck)
	} else {
		cv := C.CString(name)
		C.setenv(ck, cv, 1)
		C.free(unsafe.Pointer(cv))
	}
	rc := C.mt_blas_reselect()
	if had {
		cv := C.CString(old)
		C.setenv(ck, cv, 1)
		C.free(unsafe.Pointer(cv))
	} else {
		C.unsetenv(ck)
	}
	if rc != 0 {
		return BLASCore(), fmt.Errorf("this OpenBLAS (%s) cannot change its kernel set (not a DYNAMIC_ARCH build)", BLASCore())
	}
	got := BLASCore()
	if !strings.EqualFold(name, "auto") && !strings.EqualFold(got, name) {
		return got, fmt.Errorf("OpenBLAS has no kernel set %q (running %s)", name, got)
	}
	return got, nil
}
