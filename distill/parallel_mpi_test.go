//go:build minitron_mpi

package distill

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/internal/mpitest"
	"github.com/minitron-dev/minitron/model"
)

// dpSteps is the acceptance's run length; dpStop where runs are interrupted.
const dpSteps, dpStop = 20, 10

// dpConfig is a small distillation (CE + KL + the intermediate-state loss,
// whose projection is an aux tensor of the optimizer state; 4 micro-batches
// a step, validation) that every rank and the 1-process reference build
// alike.
func dpConfig(t *testing.T, out string) Config {
	teacher, scfg, ssrc := prunedPair(t)
	src := corpus(4, 30, 300, 64)
	return Config{StudentConfig: scfg, StudentWeights: ssrc, Teacher: teacher,
		Train: sampler(t, src, 16, 5), ValSampler: sampler(t, src, 16, 77), ValBatches: 3, ValEvery: 5,
		SeqLen: 16, MicroBatch: 1, GlobalBatch: 4, Steps: dpSteps, LR: 3e-3, MinLR: 3e-4, Warmup: 2,
		WeightDecay: 0.01, Seed: 11, Workers: 1, Out: out, SaveEvery: 5, KeepLast: 0, TensorBoard: "none",
		Losses: Losses{CE: 0.5, KL: 1, Intermediate: []LayerPair{{Student: 1, Teacher: 1}}}}
}

// dpRun runs c (cancelled after step stopAt unless 0) and returns the
// per-step losses.
func dpRun(t *testing.T, c Config, stopAt int) []float64 {
	var losses []float64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.OnStep = func(m StepMetrics) {
		losses = append(losses, m.Loss)
		if m.Step == stopAt {
			cancel()
		}
	}
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if stopAt > 0 && (!res.Interrupted || res.Steps != stopAt) {
		t.Fatalf("run stopped at step %d (interrupted %t), want %d", res.Steps, res.Interrupted, stopAt)
	}
	return losses
}

// finalWeights reads the run's last checkpoint's weights.
func finalWeights(t *testing.T, out string) map[string][]float32 {
	dir := filepath.Join(out, "checkpoints", stepName(dpSteps))
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	w := map[string][]float32{}
	for _, n := range ck.Names() {
		info, _ := ck.Info(n)
		w[n] = make([]float32, info.NumElements())
		if err := ck.ReadF32(n, w[n]); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// valLosses are the validation losses of a run's metrics.jsonl by step.
func valLosses(t *testing.T, out string) map[int]float64 {
	b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	v := map[int]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			Step int      `json:"step"`
			Val  *float64 `json:"val_loss"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.Val != nil {
			v[m.Step] = *m.Val
		}
	}
	return v
}

func closeRel(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestDataParallelMPI is the acceptance of data-parallel distillation on 2
// ranks under mpirun: 20 steps at ZeRO 0, 1 and 2 equal the 1-process run
// on the same global batch (per-step loss within 1e-6 relative, final
// weights within 1e-6: only the order of the gradient sums differs); a
// 2-rank run interrupted at step 10 resumes alone, and a 1-process run
// interrupted at step 10 resumes on 2 ranks, each continuing the
// uninterrupted run's losses within 1e-6.
func TestDataParallelMPI(t *testing.T) {
	if mpitest.Rank() {
		dpRank(t)
		return
	}
	if testing.Short() && os.Getenv("MINITRON_MPI_TESTS") == "" {
		// make test sets MINITRON_MPI_TESTS: about 1 minute on 2 cores
		t.Skip("mpirun test: set MINITRON_MPI_TESTS=1 with -short")
	}
	dir := t.TempDir()
	ref := dpRun(t, dpConfig(t, filepath.Join(dir, "ref")), 0)
	refW := finalWeights(t, filepath.Join(dir, "ref"))
	// a 1-process run interrupted at step 10, for the ranks to resume
	part1 := dpRun(t, dpConfig(t, filepath.Join(dir, "one-then-two")), dpStop)
	mpitest.Run(t, 2, "^TestDataParallelMPI$", "MINITRON_DP_DIR="+dir)

	// the 2-rank run interrupted at step 10 (ZeRO 1 shards), resumed alone
	c := dpConfig(t, filepath.Join(dir, "two-then-one"))
	c.Resume = true
	rest := dpRun(t, c, 0)
	var first []float64
	readJSON(t, filepath.Join(dir, "two-then-one.losses"), &first)

	refVal := valLosses(t, filepath.Join(dir, "ref"))
	check := func(name string, got []float64, out string) {
		t.Helper()
		w := finalWeights(t, out)
		val := valLosses(t, out)
		if len(val) != len(refVal) {
			t.Fatalf("%s: %d validations, want %d", name, len(val), len(refVal))
		}
		for s, v := range refVal {
			if !closeRel(val[s], v, 1e-6) {
				t.Errorf("%s: step %d validation loss %.9g (split over the ranks), 1 process %.9g", name, s, val[s], v)
			}
		}
		if len(got) != dpSteps {
			t.Fatalf("%s: %d steps, want %d", name, len(got), dpSteps)
		}
		for i := range ref {
			if !closeRel(got[i], ref[i], 1e-6) {
				t.Errorf("%s: step %d loss %.9g, 1 process %.9g", name, i+1, got[i], ref[i])
			}
		}
		worst := 0.0
		for n, rw := range refW {
			for i := range rw {
				worst = math.Max(worst, math.Abs(float64(w[n][i]-rw[i])))
			}
		}
		if worst > 1e-6 {
			t.Errorf("%s: final weights differ from the 1-process run's by up to %g (tolerance 1e-6)", name, worst)
		}
		t.Logf("%s: final loss %.6f (1 process %.6f), largest weight difference %.2g", name, got[len(got)-1], ref[len(ref)-1], worst)
	}
	for _, z := range []string{"zero0", "zero1", "zero2"} {
		var got []float64
		readJSON(t, filepath.Join(dir, z+".losses"), &got)
		check("2 ranks "+z, got, filepath.Join(dir, z))
	}
	check("2 ranks to step 10, then 1", append(first, rest...), filepath.Join(dir, "two-then-one"))
	var second []float64
	readJSON(t, filepath.Join(dir, "one-then-two.losses"), &second)
	check("1 process to step 10, then 2 ranks", append(part1, second...), filepath.Join(dir, "one-then-two"))
}

// dpRank is one rank's part of TestDataParallelMPI.
func dpRank(t *testing.T) {
	dir := os.Getenv("MINITRON_DP_DIR")
	world, err := comm.World()
	if err != nil {
		t.Fatal(err)
	}
	defer world.Close()
	save := func(name string, v []float64) {
		if world.Rank() == 0 {
			writeJSON(t, filepath.Join(dir, name+".losses"), v)
		}
	}
	for i, stage := range []int{ZeroReplicated, 1, 2} {
		name := fmt.Sprintf("zero%d", i)
		c := dpConfig(t, filepath.Join(dir, name))
		c.Comm, c.Zero = world, stage
		save(name, dpRun(t, c, 0))
	}
	c := dpConfig(t, filepath.Join(dir, "two-then-one"))
	c.Comm = world
	save("two-then-one", dpRun(t, c, dpStop))
	c = dpConfig(t, filepath.Join(dir, "one-then-two"))
	c.Comm, c.Resume, c.Zero = world, true, 2
	save("one-then-two", dpRun(t, c, 0))
}

func writeJSON(t *testing.T, path string, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		t.Fatal(err)
	}
}
