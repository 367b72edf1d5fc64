//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// The reference attention kernel holds a query and a row of Tk scores in
// dynamic shared memory next to 128 bytes of static reduction scratch; a
// block's static and dynamic parts together must fit MaxSmem, or the launch
// fails on a GPU (the emulator checks only the dynamic part). Attention
// takes AttentionMaxTk keys and refuses, naming Tk, the largest Tk whose
// dynamic part alone fits, which a GPU would refuse at launch.
func TestAttentionSharedMemoryLimit(t *testing.T) {
	const hd = 8
	limit := dev.AttentionMaxTk(hd)
	if need := 4*(hd+limit) + 4*32; need > dev.MaxSmem || need+4 <= dev.MaxSmem {
		t.Fatalf("AttentionMaxTk(%d) = %d takes %d bytes with the static scratch: want the largest Tk within %d", hd, limit, need, dev.MaxSmem)
	}
	run := func(tk int) error {
		var bufs []cuda.Buf
		defer func() {
			for _, b := range bufs {
				dev.Free(b)
			}
		}()
		alloc := func(n int) cuda.Buf {
			b, err := dev.Alloc(n)
			if err != nil {
				t.Fatal(err)
			}
			bufs = append(bufs, b)
			if err := dev.Zero(b); err != nil {
				t.Fatal(err)
			}
			return b
		}
		q, k, v, out := alloc(hd), alloc(tk*hd), alloc(tk*hd), alloc(hd)
		return dev.Attention(out, q, k, v, kernels.AttnDims{Batch: 1, Heads: 1, KVHeads: 1, HeadDim: hd, Tq: 1, Tk: tk}, cuda.Buf{})
	}
	if err := run(limit); err != nil {
		t.Errorf("Tk %d (AttentionMaxTk): %v", limit, err)
	}
	dynamicOnly := dev.MaxSmem/4 - hd // 4·(hd+Tk) == MaxSmem: no room left for the static scratch
	for _, tk := range []int{limit + 1, dynamicOnly} {
		err := run(tk)
		if err == nil || !strings.Contains(err.Error(), "shared memory") {
			t.Errorf("Tk %d (AttentionMaxTk %d, dynamic part alone fits up to %d): error %v, want a shared-memory error", tk, limit, dynamicOnly, err)
		}
	}
}
