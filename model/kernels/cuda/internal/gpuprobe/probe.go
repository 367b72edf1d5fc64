//go:build minitron_cuda

package gpuprobe

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

typedef int (*cuInit_t)(unsigned int);
typedef int (*cuDeviceGetCount_t)(int *);

// probe returns 0 with *count set when libcuda.so.1 loads, cuInit(0)
// succeeds and cuDeviceGetCount works; otherwise -1 (no library), or the
// CUresult of the failing call, with *stage naming it.
static int probe(int *count, int *stage) {
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	*stage = 0;
	if (!h) return -1;
	cuInit_t init = (cuInit_t)dlsym(h, "cuInit");
	cuDeviceGetCount_t cnt = (cuDeviceGetCount_t)dlsym(h, "cuDeviceGetCount");
	if (!init || !cnt) return -2;
	*stage = 1;
	int r = init(0);
	if (r != 0) return r;
	*stage = 2;
	return cnt(count);
}
*/
import "C"

import (
	"fmt"
	"os"
	"testing"
)

// Devices is how many CUDA devices the driver reported (0 never survives
// init: the process has exited).
var Devices int

// cuInit's result codes worth naming in a message.
var cuErrors = map[int]string{
	3:   "CUDA_ERROR_NOT_INITIALIZED",
	35:  "CUDA_ERROR_INSUFFICIENT_DRIVER (driver older than the CUDA version needed)",
	100: "CUDA_ERROR_NO_DEVICE",
	999: "CUDA_ERROR_UNKNOWN",
}

// Probe reports whether a usable GPU is there, and why not.
func Probe() (devices int, reason string) {
	var count, stage C.int
	r := int(C.probe(&count, &stage))
	switch {
	case r == -1:
		return 0, "cannot load libcuda.so.1 (no NVIDIA driver installed)"
	case r == -2:
		return 0, "libcuda.so.1 has no cuInit/cuDeviceGetCount"
	case r != 0:
		name := cuErrors[r]
		if name == "" {
			name = fmt.Sprintf("CUresult %d", r)
		}
		call := "cuInit"
		if stage == 2 {
			call = "cuDeviceGetCount"
		}
		return 0, call + " failed: " + name
	case count == 0:
		return 0, "the driver reports no CUDA device"
	}
	return int(count), ""
}

func init() {
	n, reason := Probe()
	if n > 0 {
		Devices = n
		return
	}
	if testing.Testing() {
		// Before testing.M runs, so go test reports the package as ok.
		fmt.Printf("skipped: no usable CUDA GPU: %s\nPASS\n", reason)
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: this is the CUDA build of minitron and there is no usable CUDA GPU: %s.\nUse the CPU build (make build → bin/minitron) on this machine.\n", os.Args[0], reason)
	os.Exit(1)
}
