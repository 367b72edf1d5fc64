//go:build minitron_cuda || minitron_cudaemu

package distill_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/device"
	. "github.com/minitron-dev/minitron/distill"
)

// A device run through the communicator on one rank (ZeRO 1 and 2: the
// arena's shard is all of it; in the CUDA build the gradients go through
// NCCL, on the emulator through the host communicator) matches the run
// without one: per-step loss and gradient norm within 1e-6 relative (only
// the order of the gradient norm's partial sums differs).
func TestRunCUDAOneRankCommunicator(t *testing.T) {
	dir := t.TempDir()
	c, ref := cudaRunConfig(t, "llama", true, device.CUDA, filepath.Join(dir, "plain"))
	c.NoTF32 = true
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for _, z := range []int{1, 2} {
		c, got := cudaRunConfig(t, "llama", true, device.CUDA, filepath.Join(dir, "comm", string(rune('0'+z))))
		c.NoTF32, c.Comm, c.Zero = true, comm.Local{}, z
		if _, err := Run(context.Background(), c); err != nil {
			if strings.Contains(err.Error(), "cannot load NCCL") {
				t.Skip(err)
			}
			t.Fatal(err)
		}
		if len(*got) != len(*ref) {
			t.Fatalf("zero %d: %d steps, want %d", z, len(*got), len(*ref))
		}
		for i, m := range *got {
			r := (*ref)[i]
			if math.Abs(m.Loss-r.Loss) > 1e-6*math.Abs(r.Loss) || math.Abs(m.GradNorm-r.GradNorm) > 1e-6*r.GradNorm {
				t.Errorf("zero %d step %d: loss %.9g grad norm %.9g, without a communicator %.9g %.9g", z, i+1, m.Loss, m.GradNorm, r.Loss, r.GradNorm)
			}
		}
	}
}
