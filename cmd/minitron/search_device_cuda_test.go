//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"math"
	"testing"
)

// search --device cuda distills every candidate on the device: the same
// candidates as on the CPU, with distilled losses within 1e-4 relative (TF32
// off), so the ranking is the CPU's.
func TestSearchDeviceCUDA(t *testing.T) {
	want, got := realSearch(t, "cpu"), realSearch(t, "cuda")
	if len(got.Candidates) != len(want.Candidates) {
		t.Fatalf("%d candidates on the device, %d on the CPU", len(got.Candidates), len(want.Candidates))
	}
	for i, w := range want.Candidates {
		g := got.Candidates[i]
		t.Logf("%s: distilled loss %.7f (cpu %.7f)", g.Name, g.DistilledLoss, w.DistilledLoss)
		if g.Name != w.Name || math.Abs(g.DistilledLoss-w.DistilledLoss) > 1e-4*w.DistilledLoss {
			t.Errorf("candidate %d: %s loss %v, cpu %s loss %v", i, g.Name, g.DistilledLoss, w.Name, w.DistilledLoss)
		}
	}
	if got.Winner != want.Winner {
		t.Errorf("winner %q, cpu %q", got.Winner, want.Winner)
	}
}
