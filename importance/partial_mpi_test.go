//go:build minitron_mpi

package importance

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/internal/mpitest"
)

// TestImportanceMPI: importance as one job of 2 ranks (each a shard, rank
// 0 merging) writes the single run's scores within 1e-12 relative.
func TestImportanceMPI(t *testing.T) {
	if mpitest.Rank() {
		w, err := comm.World()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		dir, prefix, out := os.Getenv("MINITRON_IMP_MODEL"), os.Getenv("MINITRON_IMP_DATA"), os.Getenv("MINITRON_IMP_OUT")
		if _, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: out, Samples: 7, SeqLen: 12, Batch: 2, Seed: 5,
			Aggregation: DefaultAggregation, BI: true, Loss: true, LossSamples: 5, BlockK: []int{1, 2}, Comm: w, Version: "v-test"}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if testing.Short() && os.Getenv("MINITRON_MPI_TESTS") == "" {
		t.Skip("mpirun test: set MINITRON_MPI_TESTS=1 with -short")
	}
	dir, prefix := runFixture(t)
	tmp := t.TempDir()
	whole := shardRun(t, dir, prefix, filepath.Join(tmp, "all.json"), 0, 0).Scores
	out := filepath.Join(tmp, "mpi.json")
	mpitest.Run(t, 2, "^TestImportanceMPI$", "MINITRON_IMP_MODEL="+dir, "MINITRON_IMP_DATA="+prefix, "MINITRON_IMP_OUT="+out)
	got, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != whole.Data || *got.Provenance != *whole.Provenance {
		t.Fatalf("data %+v provenance %+v, single run %+v %+v", got.Data, got.Provenance, whole.Data, whole.Provenance)
	}
	worst := relDiff(got.Channels, whole.Channels)
	for l := range whole.Layers {
		worst = math.Max(worst, relDiff(got.Layers[l].Neurons, whole.Layers[l].Neurons))
		worst = math.Max(worst, relDiff(got.Layers[l].Heads, whole.Layers[l].Heads))
	}
	worst = math.Max(worst, relDiff(got.Depth.BI, whole.Depth.BI))
	worst = math.Max(worst, relDiff(got.Depth.DropLoss, whole.Depth.DropLoss))
	if worst > 1e-12 {
		t.Fatalf("2 ranks' scores differ from the single run's by %g relative (tolerance 1e-12)", worst)
	}
}
