//go:build minitron_mpi

package comm

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

// Go cannot name MPI's handle macros (they are addresses of Open MPI's
// globals), so these helpers do.
static int mn_init(int *provided) {
	int ok;
	MPI_Initialized(&ok);
	if (ok) { MPI_Query_thread(provided); return MPI_SUCCESS; }
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc == MPI_SUCCESS) MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	return rc;
}
static int mn_serialized(void) { return MPI_THREAD_SERIALIZED; }
static int mn_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int mn_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
// dtype 0: f32 (MPI_SUM), 1: bf16 as 16-bit words (mn_bf16_op: the sum
// in f32, rounded to nearest even).
static MPI_Op mn_bf16_op = MPI_OP_NULL;
static float mn_bf16f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static void mn_bf16_sum(void *in, void *inout, int *len, MPI_Datatype *dt) {
	const uint16_t *a = in;
	uint16_t *b = inout;
	for (int i = 0; i < *len; i++) {
		float x = mn_bf16f(a[i]) + mn_bf16f(b[i]);
		uint32_t u;
		memcpy(&u, &x, 4);
		u += 0x7fff + ((u >> 16) & 1);
		b[i] = (uint16_t)(u >> 16);
	}
}
static int mn_make_ops(void) { return MPI_Op_create(mn_bf16_sum, 1, &mn_bf16_op); }
static MPI_Datatype mn_type(int bf) { return bf ? MPI_UINT16_T : MPI_FLOAT; }
static MPI_Op mn_sum(int bf) { return bf ? mn_bf16_op : MPI_SUM; }
static int mn_allreduce(void *b, int n, int bf) { return MPI_Allreduce(MPI_IN_PLACE, b, n, mn_type(bf), mn_sum(bf), MPI_COMM_WORLD); }
static int mn_allreduce_f64(double *b, int n) { return MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }
static int mn_reduce(void *b, int n, int root, int me, int bf) {
	if (me == root) return MPI_Reduce(MPI_IN_PLACE, b, n, mn_type(bf), mn_sum(bf), root, MPI_COMM_WORLD);
	return MPI_Reduce(b, NULL, n, mn_type(bf), mn_sum(bf), root, MPI_COMM_WORLD);
}
// in place: the sum of this rank's segment lands at the start of b
static int mn_reduce_scatter(void *b, const int *counts, int bf) {
	return MPI_Reduce_scatter(MPI_IN_PLACE, b, counts, mn_type(bf), mn_sum(bf), MPI_COMM_WORLD);
}
static int mn_allgather(void *b, const int *counts, const int *displs, int bf) {
	return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, counts, displs, mn_type(bf), MPI_COMM_WORLD);
}
static int mn_bcast(void *b, int n, int root, int bf) { return MPI_Bcast(b, n, mn_type(bf), root, MPI_COMM_WORLD); }
static int mn_bcast_bytes(void *b, int n, int root) { return MPI_Bcast(b, n, MPI_BYTE, root, MPI_COMM_WORLD); }
static int mn_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int mn_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int mn_finalize(void) { return MPI_Finalize(); }
static int mn_error_string(int code, char *s, int *n) { return MPI_Error_string(code, s, n); }
static int mn_max_string(void) { return MPI_MAX_ERROR_STRING; }
*/
import "C"

import (
	"fmt"
	"math"
	"sync"
	"unsafe"
)

func init() { openMPI = newMPI }

// mpiComm is MPI_COMM_WORLD over host buffers, through Open MPI's libmpi.
// Go may run successive calls on different OS threads, so MPI runs at
// MPI_THREAD_SERIALIZED and a mutex keeps the calls one at a time.
type mpiComm struct {
	mu         sync.Mutex
	rank, size int
	closed     bool
}

func newMPI() (Communicator, error) {
	var provided C.int
	if rc := C.mn_init(&provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Init_thread: %s", mpiError(rc))
	}
	if provided < C.mn_serialized() {
		return nil, fmt.Errorf("MPI_Init_thread: the MPI library provides thread level %d, minitron needs MPI_THREAD_SERIALIZED", int(provided))
	}
	m := &mpiComm{}
	var r, s C.int
	if rc := C.mn_rank(&r); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Comm_rank: %s", mpiError(rc))
	}
	if rc := C.mn_size(&s); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Comm_size: %s", mpiError(rc))
	}
	m.rank, m.size = int(r), int(s)
	if rc := C.mn_make_ops(); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("MPI_Op_create (bf16 sum): %s", mpiError(rc))
	}
	return m, nil
}

func mpiError(rc C.int) string {
	buf := make([]byte, int(C.mn_max_string()))
	var n C.int
	C.mn_error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n)
	return fmt.Sprintf("%s (MPI error %d)", string(buf[:int(n)]), int(rc))
}

func (m *mpiComm) Rank() int { return m.rank }
func (m *mpiComm) Size() int { return m.size }

// hostBuf is b's host memory (f32 Host or HostBF16), its length, and
// whether it is bf16; MPI's counts are C ints, so at most 2³¹−1 elements.
type hostBuf struct {
	p  unsafe.Pointer
	n  C.int
	bf C.int
}

func host(op string, b Buffer) (hostBuf, error) {
	var h hostBuf
	n := 0
	switch b := b.(type) {
	case Host:
		n = len(b)
		if n > 0 {
			h.p = unsafe.Pointer(&b[0])
		}
	case HostBF16:
		n, h.bf = len(b), 1
		if n > 0 {
			h.p = unsafe.Pointer(&b[0])
		}
	default:
		return h, fmt.Errorf("comm: MPI %s of a %T: MPI reduces host buffers (device buffers go through NCCL)", op, b)
	}
	if n > math.MaxInt32 {
		return h, fmt.Errorf("comm: MPI %s of %d elements (more than 2³¹−1)", op, n)
	}
	h.n = C.int(n)
	return h, nil
}

func (m *mpiComm) call(op string, f func() C.int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("comm: MPI %s after Close", op)
	}
	if rc := f(); rc != C.MPI_SUCCESS {
		return fmt.Errorf("MPI %s: %s", op, mpiError(rc))
	}
	return nil
}

func (m *mpiComm) AllReduce(b Buffer) error {
	h, err := host("all-reduce", b)
	if err != nil {
		return err
	}
	return m.call("all-reduce", func() C.int { return C.mn_allreduce(h.p, h.n, h.bf) })
}

func (m *mpiComm) Reduce(b Buffer, root int) error {
	h, err := host("reduce", b)
	if err != nil {
		return err
	}
	return m.call("reduce", func() C.int { return C.mn_reduce(h.p, h.n, C.int(root), C.int(m.rank), h.bf) })
}

// counts are counts and their offsets as MPI's C ints, and the offsets.
func (m *mpiComm) counts(op string, n int, counts []int) ([]C.int, []C.int, []int, error) {
	off, err := CheckedOffsets(counts, m.size, n)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("comm: MPI %s: %w", op, err)
	}
	cc, cd := make([]C.int, m.size), make([]C.int, m.size)
	for r := range counts {
		cc[r], cd[r] = C.int(counts[r]), C.int(off[r])
	}
	return cc, cd, off, nil
}

func (m *mpiComm) ReduceScatter(b Buffer, counts []int) error {
	h, err := host("reduce-scatter", b)
	if err != nil {
		return err
	}
	cc, _, off, err := m.counts("reduce-scatter", int(h.n), counts)
	if err != nil {
		return err
	}
	if err := m.call("reduce-scatter", func() C.int { return C.mn_reduce_scatter(h.p, &cc[0], h.bf) }); err != nil {
		return err
	}
	// MPI leaves the in-place result at the start of the buffer
	lo, k := off[m.rank], counts[m.rank]
	switch b := b.(type) {
	case Host:
		copy(b[lo:lo+k], b[:k])
	case HostBF16:
		copy(b[lo:lo+k], b[:k])
	}
	return nil
}

func (m *mpiComm) AllGather(b Buffer, counts []int) error {
	h, err := host("all-gather", b)
	if err != nil {
		return err
	}
	cc, cd, _, err := m.counts("all-gather", int(h.n), counts)
	if err != nil {
		return err
	}
	return m.call("all-gather", func() C.int { return C.mn_allgather(h.p, &cc[0], &cd[0], h.bf) })
}

func (m *mpiComm) Broadcast(b Buffer, root int) error {
	h, err := host("broadcast", b)
	if err != nil {
		return err
	}
	return m.call("broadcast", func() C.int { return C.mn_bcast(h.p, h.n, C.int(root), h.bf) })
}

func (m *mpiComm) AllReduceF64(v []float64) error {
	if len(v) == 0 {
		return nil
	}
	return m.call("all-reduce", func() C.int { return C.mn_allreduce_f64((*C.double)(unsafe.Pointer(&v[0])), C.int(len(v))) })
}

func (m *mpiComm) BroadcastBytes(p []byte, root int) error {
	for len(p) > 0 { // MPI counts are C ints
		k := min(len(p), 1<<30)
		q := p[:k]
		if err := m.call("broadcast", func() C.int { return C.mn_bcast_bytes(unsafe.Pointer(&q[0]), C.int(k), C.int(root)) }); err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}

func (m *mpiComm) Barrier() error {
	return m.call("barrier", func() C.int { return C.mn_barrier() })
}

// Abort ends the whole job: MPI_Abort makes the launcher kill every rank.
func (m *mpiComm) Abort(code int) {
	C.mn_abort(C.int(code))
	select {} // MPI_Abort does not return
}

func (m *mpiComm) Close() error {
	return m.call("finalize", func() C.int {
		m.closed = true
		return C.mn_finalize()
	})
}
