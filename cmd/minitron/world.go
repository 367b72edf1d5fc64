package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/minitron-dev/minitron/comm"
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

// endJob finishes the job's communicator after a command: on an error a
// rank of a job of several ends every rank (MPI_Abort, so no rank waits
// for it in a collective) with its error printed; on success it closes it.
func endJob(err error) {
	worldMu.Lock()
	c := worldComm
	worldMu.Unlock()
	if c == nil || c.Size() == 1 {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "minitron: rank %d of %d failed, ending the job\n", c.Rank(), c.Size())
		c.Abort(1)
	}
	c.Close()
}
