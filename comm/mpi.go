//go:build minitron_mpi

package comm

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

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
static int mn_allreduce_f32(float *b, int n) { return MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); }
static int mn_allreduce_f64(double *b, int n) { return MPI_Allreduce(MPI_IN_PLACE, b, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }
static int mn_reduce_f32(float *b, int n, int root, int me) {
	if (me == root) return MPI_Reduce(MPI_IN_PLACE, b, n, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD);
	return MPI_Reduce(b, NULL, n, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD);
}
// in place: the sum of this rank's segment lands at the start of b
static int mn_reduce_scatter_f32(float *b, const int *counts) {
	return MPI_Reduce_scatter(MPI_IN_PLACE, b, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int mn_allgather_f32(float *b, const int *counts, const int *displs) {
	return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}
static int mn_bcast_f32(float *b, int n, int root) { return MPI_Bcast(b, n, MPI_FLOAT, root, MPI_COMM_WORLD); }
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

// host checks that b is host memory of at most 2³¹−1 elements (MPI's
// counts are C ints).
func host(op string, b Buffer) (Host, error) {
	h, ok := b.(Host)
	if !ok {
		return nil, fmt.Errorf("comm: MPI %s of a %T: MPI reduces host buffers (device buffers go through NCCL)", op, b)
	}
	if len(h) > math.MaxInt32 {
		return nil, fmt.Errorf("comm: MPI %s of %d elements (more than 2³¹−1)", op, len(h))
	}
	return h, nil
}

func ptr(h Host) *C.float {
	if len(h) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&h[0]))
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
	return m.call("all-reduce", func() C.int { return C.mn_allreduce_f32(ptr(h), C.int(len(h))) })
}

func (m *mpiComm) Reduce(b Buffer, root int) error {
	h, err := host("reduce", b)
	if err != nil {
		return err
	}
	return m.call("reduce", func() C.int { return C.mn_reduce_f32(ptr(h), C.int(len(h)), C.int(root), C.int(m.rank)) })
}

func (m *mpiComm) counts(op string, n int, counts []int) ([]C.int, []C.int, error) {
	if len(counts) != m.size {
		return nil, nil, fmt.Errorf("comm: MPI %s: %d counts for %d ranks", op, len(counts), m.size)
	}
	off := Offsets(counts)
	if off[m.size] != n {
		return nil, nil, fmt.Errorf("comm: MPI %s: counts sum to %d, buffer has %d", op, off[m.size], n)
	}
	cc, cd := make([]C.int, m.size), make([]C.int, m.size)
	for r := range counts {
		cc[r], cd[r] = C.int(counts[r]), C.int(off[r])
	}
	return cc, cd, nil
}

func (m *mpiComm) ReduceScatter(b Buffer, counts []int) error {
	h, err := host("reduce-scatter", b)
	if err != nil {
		return err
	}
	cc, _, err := m.counts("reduce-scatter", len(h), counts)
	if err != nil {
		return err
	}
	if err := m.call("reduce-scatter", func() C.int { return C.mn_reduce_scatter_f32(ptr(h), &cc[0]) }); err != nil {
		return err
	}
	// MPI leaves the in-place result at the start of the buffer
	lo := Offsets(counts)[m.rank]
	copy(h[lo:lo+counts[m.rank]], h[:counts[m.rank]])
	return nil
}

func (m *mpiComm) AllGather(b Buffer, counts []int) error {
	h, err := host("all-gather", b)
	if err != nil {
		return err
	}
	cc, cd, err := m.counts("all-gather", len(h), counts)
	if err != nil {
		return err
	}
	return m.call("all-gather", func() C.int { return C.mn_allgather_f32(ptr(h), &cc[0], &cd[0]) })
}

func (m *mpiComm) Broadcast(b Buffer, root int) error {
	h, err := host("broadcast", b)
	if err != nil {
		return err
	}
	return m.call("broadcast", func() C.int { return C.mn_bcast_f32(ptr(h), C.int(len(h)), C.int(root)) })
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
