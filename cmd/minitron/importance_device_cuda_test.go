//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/importance"
)

// importance --device cuda end to end (on the emulator without a GPU): the
// scores file matches the CPU run's (same calibration and held-out
// samples, full f32 products) and records the same data.
func TestImportanceDeviceCUDA(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	scores := map[string]*importance.Scores{}
	for _, dev := range []string{"cpu", "cuda"} {
		out := filepath.Join(root, dev+".json")
		stdout, err := runCLI(t, "importance", "--model", dir, "--data", prefix, "--samples", "3", "--seq-len", "12", "--batch", "2",
			"--loss-samples", "2", "--layer-metrics", "bi,loss", "--device", dev, "--no-tf32", "--out", out)
		if err != nil {
			t.Fatalf("--device %s: %v", dev, err)
		}
		if !strings.Contains(stdout, "best block of 2 layers to drop by loss") {
			t.Errorf("--device %s printed %q", dev, stdout)
		}
		if scores[dev], err = importance.Load(out); err != nil {
			t.Fatal(err)
		}
	}
	c, g := scores["cpu"], scores["cuda"]
	if c.Data != g.Data || c.Model != g.Model || c.Depth.LossData != g.Depth.LossData {
		t.Errorf("provenance: device %+v %v %q, CPU %+v %v %q", g.Data, g.Model, g.Depth.LossData, c.Data, c.Model, c.Depth.LossData)
	}
	close := func(what string, a, b []float64, tol float64) {
		for i := range b {
			if d := math.Abs(a[i] - b[i]); d > tol*math.Max(1, math.Abs(b[i])) || math.IsNaN(d) {
				t.Errorf("%s %d: device %v, CPU %v", what, i, a[i], b[i])
			}
		}
	}
	close("channel", g.Channels, c.Channels, 1e-4)
	close("layer 3 neuron", g.Layers[3].Neurons, c.Layers[3].Neurons, 1e-4)
	close("BI", g.Depth.BI, c.Depth.BI, 1e-5)
	close("drop-one loss", g.Depth.DropLoss, c.Depth.DropLoss, 1e-5)
	for i := range c.Depth.Blocks {
		if g.Depth.Blocks[i].Start != c.Depth.Blocks[i].Start {
			t.Errorf("block %d: device %+v, CPU %+v", i, g.Depth.Blocks[i], c.Depth.Blocks[i])
		}
	}
}
