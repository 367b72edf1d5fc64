// Package comm is the communicator of a data-parallel run: the collective
// operations (all-reduce, reduce, reduce-scatter, all-gather, broadcast,
// barrier, abort) over the processes ("ranks") of one job.
//
// A rank of a distributed run is the same binary started by a launcher
// (mpirun, srun). World returns the job's communicator: MPI over host
// buffers in a binary built with -tags minitron_mpi (make build-mpi) and
// started by a launcher, else a world of one (Local), whose collectives
// leave every buffer as it is. Device buffers go through NCCL in the CUDA
// build (Register adds it; see the gpu package).
package comm

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// Buffer is memory a collective reads and writes in place: Host (f32 host
// memory), HostBF16, or a device's buffer (Device, DeviceBF16) that a
// device communicator (NCCL) knows. bf16 buffers (mixed-precision
// gradients) are summed in f32 and rounded to bf16 after each combining
// step (NCCL's ncclBfloat16; MPI through a user op), so a sum over more
// than two ranks may round more than once.
type Buffer interface {
	Len() int // elements
}

// Host is an f32 host buffer.
type Host []float32

func (h Host) Len() int { return len(h) }

// Device is f32 device memory: Ptr is the address of element 0.
type Device struct {
	Ptr uintptr
	N   int
}

func (d Device) Len() int { return d.N }

// HostBF16 is a bfloat16 host buffer (the upper 16 bits of an f32).
type HostBF16 []uint16

func (h HostBF16) Len() int { return len(h) }

// DeviceBF16 is bfloat16 device memory: Ptr is the address of element 0.
type DeviceBF16 struct {
	Ptr uintptr
	N   int
}

func (d DeviceBF16) Len() int { return d.N }

// Slice is elements [lo, hi) of b.
func Slice(b Buffer, lo, hi int) Buffer {
	switch b := b.(type) {
	case Host:
		return b[lo:hi]
	case HostBF16:
		return b[lo:hi]
	case Device:
		if lo < 0 || hi > b.N || lo > hi {
			panic(fmt.Sprintf("comm: slice [%d,%d) of a device buffer of %d", lo, hi, b.N))
		}
		return Device{Ptr: b.Ptr + uintptr(4*lo), N: hi - lo}
	case DeviceBF16:
		if lo < 0 || hi > b.N || lo > hi {
			panic(fmt.Sprintf("comm: slice [%d,%d) of a bf16 device buffer of %d", lo, hi, b.N))
		}
		return DeviceBF16{Ptr: b.Ptr + uintptr(2*lo), N: hi - lo}
	}
	panic(fmt.Sprintf("comm: unknown buffer %T", b))
}

// Communicator is one rank's view of the job. Every rank must call the
// same collectives in the same order with buffers of the same lengths.
// Sums are f32 (f64 for the host scalars of AllReduceF64); the result of a
// collective is the same on every rank that receives it.
type Communicator interface {
	Rank() int
	Size() int
	// AllReduce sums b over the ranks, in place on every rank.
	AllReduce(b Buffer) error
	// Reduce sums b over the ranks into root's b (the others' b are read only).
	Reduce(b Buffer, root int) error
	// ReduceScatter sums b (the same length on every rank) over the ranks
	// and leaves rank r's segment of Segments(b.Len(), counts) summed in
	// place (the rest of b is undefined afterwards).
	ReduceScatter(b Buffer, counts []int) error
	// AllGather copies every rank's segment of b to all ranks, in place.
	AllGather(b Buffer, counts []int) error
	// Broadcast copies root's b to every rank.
	Broadcast(b Buffer, root int) error
	// AllReduceF64 sums host float64 values over the ranks, in place.
	AllReduceF64(v []float64) error
	// BroadcastBytes copies root's p to every rank; the others pass a
	// buffer of the same length.
	BroadcastBytes(p []byte, root int) error
	// Barrier returns when every rank has entered it.
	Barrier() error
	// Abort ends every rank of the job with code (it does not return).
	Abort(code int)
	// Close ends this rank's part of the job (after the last collective).
	Close() error
}

// Split divides n elements over size ranks as evenly as possible (the first
// n%size ranks hold one more) and returns each rank's count.
func Split(n, size int) []int {
	c := make([]int, size)
	for r := range c {
		c[r] = n / size
		if r < n%size {
			c[r]++
		}
	}
	return c
}

// Offsets are the start of each rank's segment for counts (and the total at
// index len(counts)).
func Offsets(counts []int) []int {
	o := make([]int, len(counts)+1)
	for r, c := range counts {
		o[r+1] = o[r] + c
	}
	return o
}

// CheckedOffsets are Offsets(counts) for a collective over a buffer of n
// elements on size ranks, or an error when counts do not give one segment
// per rank covering the buffer.
func CheckedOffsets(counts []int, size, n int) ([]int, error) {
	if len(counts) != size {
		return nil, fmt.Errorf("%d counts for %d ranks", len(counts), size)
	}
	off := Offsets(counts)
	if off[size] != n {
		return nil, fmt.Errorf("counts sum to %d, buffer has %d", off[size], n)
	}
	return off, nil
}

// Range is rank r's segment [lo, hi) of n elements split over size ranks.
func Range(n, size, r int) (lo, hi int) {
	o := Offsets(Split(n, size))
	return o[r], o[r+1]
}

// Agree makes every rank of c return an error when one of them has one,
// so no rank waits in a later collective for a rank that gave up: a rank
// with err returns it, the others an error naming the first failed rank.
// Every rank must call it at the same point; with c nil or of one rank it
// returns err.
func Agree(c Communicator, err error) error {
	if c == nil || c.Size() == 1 {
		return err
	}
	v := make([]float64, c.Size())
	if err != nil {
		v[c.Rank()] = 1
	}
	if cerr := c.AllReduceF64(v); cerr != nil {
		return errors.Join(err, cerr)
	}
	if err != nil {
		return err
	}
	for q, f := range v {
		if f != 0 {
			return fmt.Errorf("rank %d failed (its error is in its output)", q)
		}
	}
	return nil
}

// Local is the world of one: every collective leaves its buffer as the sum
// over one rank would, unchanged.
type Local struct{}

func (Local) Rank() int                         { return 0 }
func (Local) Size() int                         { return 1 }
func (Local) AllReduce(Buffer) error            { return nil }
func (Local) Reduce(Buffer, int) error          { return nil }
func (Local) ReduceScatter(Buffer, []int) error { return nil }
func (Local) AllGather(Buffer, []int) error     { return nil }
func (Local) Broadcast(Buffer, int) error       { return nil }
func (Local) AllReduceF64([]float64) error      { return nil }
func (Local) BroadcastBytes([]byte, int) error  { return nil }
func (Local) Barrier() error                    { return nil }
func (Local) Abort(code int)                    { os.Exit(code) }
func (Local) Close() error                      { return nil }

// launched reports whether a launcher started this process as a rank of a
// job: the MPI runtimes' environment (Open MPI, PMIx under srun or
// Kubernetes' MPI operator, MPICH/Hydra's PMI).
func launched() bool {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

// LocalRanks is the number of ranks the launcher started on this machine
// (1 without a launcher): they share its cores.
func LocalRanks() int {
	for _, k := range []string{"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
	}
	return 1
}

var (
	worldOnce sync.Once
	world     Communicator
	worldErr  error
)

// World is the job's communicator, made on the first call: MPI when this
// binary has it (-tags minitron_mpi) and a launcher started it, else Local.
// A binary without MPI that a launcher started with more than one rank is
// refused (each rank would train alone and write the same files).
func World() (Communicator, error) {
	worldOnce.Do(func() {
		world, worldErr = Local{}, nil
		if !launched() {
			return
		}
		if openMPI == nil {
			if n := os.Getenv("OMPI_COMM_WORLD_SIZE"); n != "" && n != "1" {
				worldErr = fmt.Errorf("started by a launcher as one of %s ranks, but this binary has no MPI: build it with make build-mpi (bin/minitron-mpi)", n)
			}
			return
		}
		world, worldErr = openMPI()
	})
	return world, worldErr
}

// openMPI is set by the MPI backend (build tag minitron_mpi).
var openMPI func() (Communicator, error)

// deviceComm makes a communicator of device buffers over a host one
// (NCCL in the CUDA build; RegisterDevice).
var deviceComm func(host Communicator) (Communicator, error)

// RegisterDevice makes f the maker of device communicators (package
// comm/nccl registers NCCL's when linked).
func RegisterDevice(f func(host Communicator) (Communicator, error)) { deviceComm = f }

// ForDevice is a communicator of device buffers for host's ranks, and
// whether this binary has one (NCCL); without one a device's buffers must
// be host memory (the CUDA emulator's) to be reduced by host.
func ForDevice(host Communicator) (Communicator, bool, error) {
	if deviceComm == nil {
		return host, false, nil
	}
	c, err := deviceComm(host)
	return c, err == nil, err
}
