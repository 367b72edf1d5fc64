//go:build minitron_mpi

package comm

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/internal/mpitest"
)

// TestMPICollectives runs the collectives on 3 ranks (uneven segments) and
// checks every result exactly: the values are small integers, whose f32
// sums are exact in any order.
func TestMPICollectives(t *testing.T) {
	if !mpitest.Rank() {
		out := mpitest.Run(t, 3, "^TestMPICollectives$")
		if n := strings.Count(out, "rank ok"); n != 3 {
			t.Fatalf("%d ranks reported success, want 3:\n%s", n, out)
		}
		return
	}
	c, err := World()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, n := c.Rank(), c.Size()
	if n != 3 {
		t.Fatalf("size %d, want 3", n)
	}
	const N = 10 // split 4,3,3
	counts := Split(N, n)
	off := Offsets(counts)
	fill := func() Host {
		b := make(Host, N)
		for i := range b {
			b[i] = float32(i + 100*r)
		}
		return b
	}
	sum := func(i int) float32 { return float32(3*i + 100*(0+1+2)) }
	cases := []struct {
		name, reason string
		run          func() error
	}{
		{"allreduce", "every element summed on every rank", func() error {
			b := fill()
			if err := c.AllReduce(b); err != nil {
				return err
			}
			for i, v := range b {
				if v != sum(i) {
					return fmt.Errorf("b[%d] = %g, want %g", i, v, sum(i))
				}
			}
			return nil
		}},
		{"reduce", "the sum lands on the root only", func() error {
			b := fill()
			if err := c.Reduce(b[2:7], 1); err != nil {
				return err
			}
			for i := 2; i < 7; i++ {
				want := float32(i + 100*r)
				if r == 1 {
					want = sum(i)
				}
				if b[i] != want {
					return fmt.Errorf("b[%d] = %g, want %g", i, b[i], want)
				}
			}
			return nil
		}},
		{"reducescatter", "each rank's own segment summed, in place at its offset", func() error {
			b := fill()
			if err := c.ReduceScatter(b, counts); err != nil {
				return err
			}
			for i := off[r]; i < off[r+1]; i++ {
				if b[i] != sum(i) {
					return fmt.Errorf("b[%d] = %g, want %g", i, b[i], sum(i))
				}
			}
			return nil
		}},
		{"allgather", "every rank's segment copied to all", func() error {
			b := make(Host, N)
			for i := off[r]; i < off[r+1]; i++ {
				b[i] = float32(1000*r + i)
			}
			if err := c.AllGather(b, counts); err != nil {
				return err
			}
			for q := 0; q < n; q++ {
				for i := off[q]; i < off[q+1]; i++ {
					if b[i] != float32(1000*q+i) {
						return fmt.Errorf("b[%d] = %g, want %d", i, b[i], 1000*q+i)
					}
				}
			}
			return nil
		}},
		{"broadcast", "root 2's values everywhere", func() error {
			b := fill()
			if err := c.Broadcast(b, 2); err != nil {
				return err
			}
			for i, v := range b {
				if v != float32(i+200) {
					return fmt.Errorf("b[%d] = %g", i, v)
				}
			}
			p := []byte(fmt.Sprintf("from-%d", r))
			if err := c.BroadcastBytes(p, 0); err != nil {
				return err
			}
			if string(p) != "from-0" {
				return fmt.Errorf("bytes %q", p)
			}
			return nil
		}},
		{"f64", "float64 host scalars", func() error {
			v := []float64{float64(r), 0.5}
			if err := c.AllReduceF64(v); err != nil {
				return err
			}
			if v[0] != 3 || v[1] != 1.5 {
				return fmt.Errorf("got %v", v)
			}
			return c.Barrier()
		}},
		{"bf16", "bf16 host buffers (mixed-precision gradients): small integers, exact in bf16 in any summation order", func() error {
			bfv := func(v float32) uint16 { return uint16(math.Float32bits(v) >> 16) }
			fv := func(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
			fillB := func() HostBF16 {
				b := make(HostBF16, N)
				for i := range b {
					b[i] = bfv(float32(i + 10*r))
				}
				return b
			}
			sumB := func(i int) float32 { return float32(3*i + 10*(0+1+2)) }
			b := fillB()
			if err := c.AllReduce(b); err != nil {
				return err
			}
			for i, v := range b {
				if fv(v) != sumB(i) {
					return fmt.Errorf("all-reduce b[%d] = %g, want %g", i, fv(v), sumB(i))
				}
			}
			b = fillB()
			if err := c.ReduceScatter(b, counts); err != nil {
				return err
			}
			for i := off[r]; i < off[r+1]; i++ {
				if fv(b[i]) != sumB(i) {
					return fmt.Errorf("reduce-scatter b[%d] = %g, want %g", i, fv(b[i]), sumB(i))
				}
			}
			b = fillB()
			if err := c.Reduce(Slice(b, 1, 4), 0); err != nil {
				return err
			}
			if r == 0 && fv(b[2]) != sumB(2) {
				return fmt.Errorf("reduce b[2] = %g, want %g", fv(b[2]), sumB(2))
			}
			b = make(HostBF16, N)
			for i := off[r]; i < off[r+1]; i++ {
				b[i] = bfv(float32(10*r + i))
			}
			if err := c.AllGather(b, counts); err != nil {
				return err
			}
			for q := 0; q < n; q++ {
				for i := off[q]; i < off[q+1]; i++ {
					if fv(b[i]) != float32(10*q+i) {
						return fmt.Errorf("all-gather b[%d] = %g, want %d", i, fv(b[i]), 10*q+i)
					}
				}
			}
			b = fillB()
			if err := c.Broadcast(b, 1); err != nil {
				return err
			}
			for i, v := range b {
				if fv(v) != float32(i+10) {
					return fmt.Errorf("broadcast b[%d] = %g", i, fv(v))
				}
			}
			return nil
		}},
		{"agree", "one rank's error reaches every rank, naming it; without one none fails", func() error {
			if err := Agree(c, nil); err != nil {
				return fmt.Errorf("no rank failed, got %v", err)
			}
			var mine error
			if r == 1 {
				mine = fmt.Errorf("rank 1's own error")
			}
			err := Agree(c, mine)
			switch {
			case r == 1 && err != mine:
				return fmt.Errorf("the failed rank got %v, want its own error", err)
			case r != 1 && (err == nil || !strings.Contains(err.Error(), "rank 1 failed")):
				return fmt.Errorf("got %v, want rank 1's failure", err)
			}
			return nil
		}},
		{"device", "MPI refuses device buffers with an error, not a crash", func() error {
			if err := c.AllReduce(Device{Ptr: 8, N: 1}); err == nil {
				return fmt.Errorf("no error")
			}
			return nil
		}},
	}
	for _, tc := range cases {
		if err := tc.run(); err != nil {
			t.Errorf("rank %d: %s (%s): %v", r, tc.name, tc.reason, err)
		}
	}
	if !t.Failed() {
		fmt.Println("rank ok")
	}
}
