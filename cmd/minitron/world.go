package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/distill"
)

// The job's communicator: a world of one unless this binary has MPI
// (bin/minitron-mpi) and a launcher (mpirun, srun) started it.
var (
	worldMu   sync.Mutex
	worldComm comm.Communicator
)

// jobWorld opens the job's communicator on first use.
func jobWorld() (comm.Communicator, error) {
	c, err := comm.World()
	if err != nil {
		return nil, err
	}
	worldMu.Lock()
	worldComm = c
	worldMu.Unlock()
	return c, nil
}

// jobComm is the job's communicator when it has more than one rank (nil
// alone), and w on rank 0 but io.Discard on the others: rank 0 alone
// prints, the others' output would repeat it.
func jobComm(w io.Writer) (comm.Communicator, io.Writer, error) {
	world, err := jobWorld()
	if err != nil || world.Size() == 1 {
		return nil, w, err
	}
	if world.Rank() != 0 {
		w = io.Discard
	}
	return world, w, nil
}

// zeroConfig is distill's Config.Zero (and BenchOptions.Zero) for a --zero
// flag: -1 (unset) the library's default, else the ZeRO stage 0, 1 or 2.
func zeroConfig(flag int) (int, error) {
	switch flag {
	case -1:
		return distill.ZeroDefault, nil
	case 0:
		return distill.ZeroReplicated, nil
	case 1, 2:
		return flag, nil
	}
	return 0, fmt.Errorf("--zero %d: want 0, 1 or 2", flag)
}

// endJob finishes the job's communicator after a command: on an error a
// rank of a job of several ends every rank (MPI_Abort, so no rank waits
// for it in a collective) with its error printed; otherwise it closes it,
// a job of one rank included (mpirun -np 1 counts a rank that initialised
// MPI and exits without finalising it as failed).
func endJob(err error) {
	worldMu.Lock()
	c := worldComm
	worldMu.Unlock()
	if c == nil {
		return
	}
	if err != nil && c.Size() > 1 {
		fmt.Fprintf(os.Stderr, "minitron: rank %d of %d failed, ending the job\n", c.Rank(), c.Size())
		c.Abort(1)
	}
	c.Close()
}
