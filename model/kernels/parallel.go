package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// workers is how many goroutines the kernels split work over. It is the only
// package-level knob; it defaults to GOMAXPROCS. Matrix products are split
// in Go too (ParMatMulT), so OpenBLAS should run single-threaded
// (SetBLASThreads(1)) and Go owns the cores: two thread pools on two cores
// otherwise spin against each other.
var workers atomic.Int32

func init() {
	workers.Store(int32(runtime.GOMAXPROCS(0)))
	// Go owns the cores: products are split over goroutines (ParSgemm), and
	// OpenBLAS's own pool would spin against them.
	SetBLASThreads(1)
}

// Workers reports how many goroutines the kernels use for one call.
func Workers() int { return int(workers.Load()) }

// SetWorkers sets how many goroutines the kernels use for one call (n < 1
// means GOMAXPROCS). It returns the previous value.
func SetWorkers(n int) int {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	return int(workers.Swap(int32(n)))
}

// ParallelFor calls fn over disjoint ranges [lo,hi) covering [0,n), on up to
// Workers() goroutines, each range at least minChunk long (so tiny loops stay
// on the calling goroutine). Ranges are handed out dynamically, a few per
// worker, so a goroutine whose core is busy with another process does not
// hold up the rest. It returns when every call has returned.
func ParallelFor(n, minChunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if minChunk < 1 {
		minChunk = 1
	}
	w := Workers()
	chunks := min(n/minChunk, 4*w)
	if w <= 1 || chunks <= 1 {
		fn(0, n)
		return
	}
	parallelTasks(chunks, func(_, c int) { fn(c*n/chunks, (c+1)*n/chunks) })
}

// parallelTasks runs fn(worker, task) for task in [0,n) with dynamic
// scheduling over up to Workers() goroutines; worker indexes per-goroutine
// scratch buffers.
func parallelTasks(n int, fn func(worker, task int)) {
	w := Workers()
	if n < w {
		w = n
	}
	if w <= 1 {
		for t := 0; t < n; t++ {
			fn(0, t)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	run := func(id int) {
		for {
			t := int(next.Add(1) - 1)
			if t >= n {
				return
			}
			fn(id, t)
		}
	}
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		go func() { defer wg.Done(); run(i) }()
	}
	run(0)
	wg.Wait()
}
