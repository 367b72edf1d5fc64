//go:build minitron_cuda

package nccl

/*
#cgo LDFLAGS: -ldl
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>

// The few NCCL declarations used (nccl.h is not needed to build): the ABI
// of these calls is stable across NCCL 2.x.
typedef struct { char internal[128]; } mn_ncclUniqueId;
typedef void *mn_ncclComm;
enum { mn_ncclFloat32 = 7, mn_ncclBfloat16 = 9, mn_ncclSum = 0 };

static int (*p_getid)(mn_ncclUniqueId *);
static int (*p_init)(mn_ncclComm *, int, mn_ncclUniqueId, int);
static int (*p_allreduce)(const void *, void *, size_t, int, int, mn_ncclComm, void *);
static int (*p_reduce)(const void *, void *, size_t, int, int, int, mn_ncclComm, void *);
static int (*p_bcast)(const void *, void *, size_t, int, int, mn_ncclComm, void *);
static int (*p_gstart)(void);
static int (*p_gend)(void);
static int (*p_destroy)(mn_ncclComm);
static int (*p_abort)(mn_ncclComm);
static const char *(*p_errstr)(int);
static int (*p_sync)(void *); // the driver's cuStreamSynchronize

static const char *mn_load(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!h) return dlerror();
#define SYM(p, name) p = dlsym(h, name); if (!p) { dlclose(h); return "missing symbol " name; }
	SYM(p_getid, "ncclGetUniqueId")
	SYM(p_init, "ncclCommInitRank")
	SYM(p_allreduce, "ncclAllReduce")
	SYM(p_reduce, "ncclReduce")
	SYM(p_bcast, "ncclBroadcast")
	SYM(p_gstart, "ncclGroupStart")
	SYM(p_gend, "ncclGroupEnd")
	SYM(p_destroy, "ncclCommDestroy")
	SYM(p_abort, "ncclCommAbort")
	SYM(p_errstr, "ncclGetErrorString")
#undef SYM
	void *cu = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (!cu) return dlerror();
	p_sync = dlsym(cu, "cuStreamSynchronize");
	if (!p_sync) return "missing symbol cuStreamSynchronize in libcuda.so.1";
	return NULL;
}

static int mn_getid(void *id) { return p_getid((mn_ncclUniqueId *)id); }
static int mn_init(uintptr_t *c, int n, const void *id, int rank) {
	mn_ncclUniqueId u;
	memcpy(&u, id, sizeof u);
	mn_ncclComm cc;
	int r = p_init(&cc, n, u, rank);
	*c = (uintptr_t)cc;
	return r;
}
// In place on the default stream, then synchronised: the callers read the
// result right after.
// bf selects ncclBfloat16 (NCCL ≥ 2.10) over ncclFloat32.
static int mn_dt(int bf) { return bf ? mn_ncclBfloat16 : mn_ncclFloat32; }
static int mn_allreduce(uintptr_t c, uintptr_t b, size_t n, int bf) {
	return p_allreduce((void *)b, (void *)b, n, mn_dt(bf), mn_ncclSum, (mn_ncclComm)c, NULL);
}
static int mn_reduce(uintptr_t c, uintptr_t b, size_t n, int root, int bf) {
	return p_reduce((void *)b, (void *)b, n, mn_dt(bf), mn_ncclSum, root, (mn_ncclComm)c, NULL);
}
static int mn_bcast(uintptr_t c, uintptr_t b, size_t n, int root, int bf) {
	return p_bcast((void *)b, (void *)b, n, mn_dt(bf), root, (mn_ncclComm)c, NULL);
}
static int mn_gstart(void) { return p_gstart(); }
static int mn_gend(void) { return p_gend(); }
static int mn_sync(void) { return p_sync(NULL); }
static int mn_destroy(uintptr_t c) { return p_destroy((mn_ncclComm)c); }
static int mn_abort(uintptr_t c) { return p_abort((mn_ncclComm)c); }
static const char *mn_errstr(int r) { return p_errstr(r); }
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"github.com/minitron-dev/minitron/comm"
)

func init() { comm.RegisterDevice(New) }

var (
	loadOnce sync.Once
	loadErr  error
)

// load dlopens NCCL once per process (see the package comment).
func load() error {
	loadOnce.Do(func() {
		cands := []string{"libnccl.so.2", "libnccl.so"}
		if p := os.Getenv("MINITRON_NCCL"); p != "" {
			cands = []string{p}
		}
		var msgs []string
		for _, c := range cands {
			cs := C.CString(c)
			msg := C.mn_load(cs)
			C.free(unsafe.Pointer(cs))
			if msg == nil {
				return
			}
			msgs = append(msgs, C.GoString(msg))
		}
		loadErr = fmt.Errorf("nccl: cannot load NCCL (%s); install it (libnccl2, or pip's nvidia-nccl-cu12) or set MINITRON_NCCL to a libnccl.so.2 file", strings.Join(msgs, "; "))
	})
	return loadErr
}

// ncclComm is NCCL over device buffers beside host, which carries the rest.
type ncclComm struct {
	comm.Communicator // the host communicator
	mu                sync.Mutex
	c                 C.uintptr_t
}

// New makes the NCCL communicator of host's ranks: rank 0 creates the
// unique id and host broadcasts it; every rank then joins (one GPU per
// rank: the rank's device must be current, as the CUDA engine makes it).
func New(host comm.Communicator) (comm.Communicator, error) {
	if err := load(); err != nil {
		return nil, err
	}
	id := make([]byte, 128)
	if host.Rank() == 0 {
		if r := C.mn_getid(unsafe.Pointer(&id[0])); r != 0 {
			return nil, ncclError("ncclGetUniqueId", r)
		}
	}
	if err := host.BroadcastBytes(id, 0); err != nil {
		return nil, fmt.Errorf("nccl: broadcasting the unique id: %w", err)
	}
	n := &ncclComm{Communicator: host}
	if r := C.mn_init(&n.c, C.int(host.Size()), unsafe.Pointer(&id[0]), C.int(host.Rank())); r != 0 {
		return nil, ncclError("ncclCommInitRank", r)
	}
	return n, nil
}

func ncclError(op string, r C.int) error {
	return fmt.Errorf("nccl: %s: %s (NCCL error %d)", op, C.GoString(C.mn_errstr(r)), int(r))
}

// run makes the NCCL calls of one collective (a group when several) and
// waits for them.
func (n *ncclComm) run(op string, calls func() C.int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := calls(); r != 0 {
		return ncclError(op, r)
	}
	if r := C.mn_sync(); r != 0 {
		return fmt.Errorf("nccl: %s: cuStreamSynchronize error %d", op, int(r))
	}
	return nil
}

// devBuf is a device buffer: its address, length, element size and
// whether it is bf16.
type devBuf struct {
	Ptr     uintptr
	N, size int
	bf      C.int
}

func dev(b comm.Buffer) (devBuf, bool) {
	switch d := b.(type) {
	case comm.Device:
		return devBuf{Ptr: d.Ptr, N: d.N, size: 4}, true
	case comm.DeviceBF16:
		return devBuf{Ptr: d.Ptr, N: d.N, size: 2, bf: 1}, true
	}
	return devBuf{}, false
}

func (n *ncclComm) AllReduce(b comm.Buffer) error {
	d, ok := dev(b)
	if !ok {
		return n.Communicator.AllReduce(b)
	}
	return n.run("all-reduce", func() C.int { return C.mn_allreduce(n.c, C.uintptr_t(d.Ptr), C.size_t(d.N), d.bf) })
}

func (n *ncclComm) Reduce(b comm.Buffer, root int) error {
	d, ok := dev(b)
	if !ok {
		return n.Communicator.Reduce(b, root)
	}
	return n.run("reduce", func() C.int { return C.mn_reduce(n.c, C.uintptr_t(d.Ptr), C.size_t(d.N), C.int(root), d.bf) })
}

func (n *ncclComm) Broadcast(b comm.Buffer, root int) error {
	d, ok := dev(b)
	if !ok {
		return n.Communicator.Broadcast(b, root)
	}
	return n.run("broadcast", func() C.int { return C.mn_bcast(n.c, C.uintptr_t(d.Ptr), C.size_t(d.N), C.int(root), d.bf) })
}

// grouped runs one NCCL call per rank's segment in a group: uneven
// reduce-scatter (a reduce to each owner) and all-gather (a broadcast from
// each owner), in place.
func (n *ncclComm) grouped(op string, d devBuf, counts []int, call func(p C.uintptr_t, k C.size_t, root C.int) C.int) error {
	off, err := comm.CheckedOffsets(counts, n.Size(), d.N)
	if err != nil {
		return fmt.Errorf("nccl: %s: %w", op, err)
	}
	return n.run(op, func() C.int {
		if r := C.mn_gstart(); r != 0 {
			return r
		}
		for q, k := range counts {
			if k == 0 {
				continue
			}
			if r := call(C.uintptr_t(d.Ptr+uintptr(d.size*off[q])), C.size_t(k), C.int(q)); r != 0 {
				C.mn_gend()
				return r
			}
		}
		return C.mn_gend()
	})
}

func (n *ncclComm) ReduceScatter(b comm.Buffer, counts []int) error {
	d, ok := dev(b)
	if !ok {
		return n.Communicator.ReduceScatter(b, counts)
	}
	return n.grouped("reduce-scatter", d, counts, func(p C.uintptr_t, k C.size_t, root C.int) C.int { return C.mn_reduce(n.c, p, k, root, d.bf) })
}

func (n *ncclComm) AllGather(b comm.Buffer, counts []int) error {
	d, ok := dev(b)
	if !ok {
		return n.Communicator.AllGather(b, counts)
	}
	return n.grouped("all-gather", d, counts, func(p C.uintptr_t, k C.size_t, root C.int) C.int { return C.mn_bcast(n.c, p, k, root, d.bf) })
}

// Abort ends NCCL's part, then the job through the host communicator.
func (n *ncclComm) Abort(code int) {
	C.mn_abort(n.c)
	n.Communicator.Abort(code)
}

// Close releases NCCL's communicator; the host's stays open (its owner
// closes it).
func (n *ncclComm) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := C.mn_destroy(n.c); r != 0 {
		return ncclError("ncclCommDestroy", r)
	}
	return nil
}
