//go:build minitron_mpi

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/internal/mpitest"
	"github.com/minitron-dev/minitron/model"
)

// TestMain makes this test binary the minitron command when
// MINITRON_TEST_AS_CLI is set, so that mpirun can start it as the ranks of
// a job (it is then bin/minitron-mpi with the test's code linked in).
func TestMain(m *testing.M) {
	if os.Getenv("MINITRON_TEST_AS_CLI") != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mpiCLI starts `minitron args...` as np ranks; the returned command has
// not been started.
func mpiCLI(ctx context.Context, np int, out *bytes.Buffer, args ...string) *exec.Cmd {
	cmd := mpitest.Command(ctx, np, []string{"MINITRON_TEST_AS_CLI=1"}, os.Args[0], args...)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd
}

// cliRunFiles are a tiny teacher, student and dataset for the CLI runs.
func cliRunFiles(t *testing.T) (teacher, student, train string) {
	dir := t.TempDir()
	teacher, student = filepath.Join(dir, "teacher"), filepath.Join(dir, "student")
	tinyCheckpoint(t, teacher, model.Nemotron, 64, 1)
	tinyCheckpoint(t, student, model.Nemotron, 32, 2)
	train = filepath.Join(dir, "train")
	writeTinyData(t, train, 30, 200, 64, 1)
	return teacher, student, train
}

func metricLosses(t *testing.T, out string) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ls []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct{ Loss float64 }
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, m.Loss)
	}
	return ls
}

// TestDistillMPICLI: `mpirun -np 2 minitron-mpi distill` of a tiny model
// for 20 steps (ZeRO 1, the default) logs the 1-process run's losses
// within 1e-6 relative and writes its final weights within 1e-6, from rank
// 0 alone.
func TestDistillMPICLI(t *testing.T) {
	if os.Getenv("MINITRON_MPI_TESTS") == "" && testing.Short() {
		t.Skip("mpirun test: set MINITRON_MPI_TESTS=1 with -short")
	}
	teacher, student, train := cliRunFiles(t)
	dir := t.TempDir()
	args := func(out string) []string {
		return []string{"distill", "--teacher", teacher, "--student", student, "--data", train,
			"--seq-len", "16", "--micro-batch", "1", "--global-batch", "4", "--steps", "20", "--lr", "0.003", "--ce", "1", "--kl", "1",
			"--warmup", "2", "--threads", "1", "--save-every", "10", "--out", out, "--json"}
	}
	one := filepath.Join(dir, "one")
	if _, err := runCLI(t, args(one)...); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(dir, "two")
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := mpiCLI(ctx, 2, &buf, args(two)...).Run(); err != nil {
		t.Fatalf("mpirun: %v\n%s", err, buf.String())
	}
	if n := strings.Count(buf.String(), `"steps":20`); n != 1 {
		t.Errorf("the result was printed %d times, want once (rank 0):\n%s", n, buf.String())
	}
	want, got := metricLosses(t, one), metricLosses(t, two)
	if len(got) != len(want) || len(want) != 20 {
		t.Fatalf("%d and %d metric lines, want 20", len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6*math.Abs(want[i]) {
			t.Errorf("step %d: 2 ranks loss %.9g, 1 process %.9g", i+1, got[i], want[i])
		}
	}
	w1, w2 := readWeights(t, one), readWeights(t, two)
	for n, a := range w1 {
		for i := range a {
			if d := math.Abs(float64(a[i] - w2[n][i])); d > 1e-6 {
				t.Fatalf("%s[%d]: weights differ by %g", n, i, d)
			}
		}
	}
}

func readWeights(t *testing.T, out string) map[string][]float32 {
	t.Helper()
	ck, err := model.OpenCheckpoint(filepath.Join(out, "checkpoints", "step-0000020"))
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

// TestOneRankMPICLI: a job of one rank (mpirun -np 1) finalises MPI, so
// mpirun reports success rather than a rank that exited improperly.
func TestOneRankMPICLI(t *testing.T) {
	if os.Getenv("MINITRON_MPI_TESTS") == "" && testing.Short() {
		t.Skip("mpirun test: set MINITRON_MPI_TESTS=1 with -short")
	}
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := mpiCLI(ctx, 1, &buf, "bench", "train", "--threads", "1", "--batch", "2", "--seq", "16", "--steps", "1",
		"--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--ffn", "64", "--vocab", "64")
	if err := cmd.Run(); err != nil {
		t.Fatalf("mpirun -np 1: %v\n%s", err, buf.String())
	}
}

// TestKilledRankEndsJob: SIGKILL of one rank of a 2-rank distillation ends
// the job with a non-zero status within 60 s (mpirun sees the death and
// kills the other rank, which would wait for it in a collective forever),
// and the last complete checkpoint still resumes, on one process.
func TestKilledRankEndsJob(t *testing.T) {
	if os.Getenv("MINITRON_MPI_TESTS") == "" && testing.Short() {
		t.Skip("mpirun test: set MINITRON_MPI_TESTS=1 with -short")
	}
	teacher, student, train := cliRunFiles(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"distill", "--teacher", teacher, "--student", student, "--data", train,
		"--seq-len", "16", "--micro-batch", "1", "--global-batch", "2", "--steps", "100000", "--threads", "1",
		"--save-every", "3", "--out", out, "--json"}
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := mpiCLI(ctx, 2, &buf, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// kill a rank once two checkpoints are written (so one is complete
	// whatever the kill interrupts)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ents, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
		n := 0
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "step-") && !strings.Contains(e.Name(), ".") {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no checkpoints after 2 minutes:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ranks := children(cmd.Process.Pid)
	if len(ranks) != 2 {
		cmd.Process.Kill()
		t.Fatalf("mpirun has %d child processes, want the 2 ranks", len(ranks))
	}
	killed := time.Now()
	syscall.Kill(ranks[1], syscall.SIGKILL)
	err := cmd.Wait()
	took := time.Since(killed)
	if err == nil {
		t.Fatalf("the job exited 0 after a rank was killed:\n%s", buf.String())
	}
	if took > 60*time.Second {
		t.Fatalf("the job took %v to end after a rank was killed (limit 60 s)", took)
	}
	t.Logf("job ended %v after the SIGKILL: %v", took.Round(time.Millisecond), err)

	// The latest complete checkpoint resumes: a few more steps alone.
	st, err := os.ReadFile(filepath.Join(out, "checkpoints", "latest"))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(st)), "step-"))
	// Interrupt once the resumed run has saved a later checkpoint: the
	// killed job's metrics may run past from, so their length says nothing
	// about the resumed run (a SIGINT before it listens kills the test).
	go func() {
		for i := 0; i < 6000; i++ {
			st, _ := os.ReadFile(filepath.Join(out, "checkpoints", "latest"))
			if n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(st)), "step-")); n > from {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := runCLI(t, append(args, "--resume")...)
	if err != nil {
		t.Fatalf("resume after the kill: %v\n%s", err, res)
	}
	var r struct {
		Steps       int
		Interrupted bool
	}
	if err := json.Unmarshal([]byte(res[strings.Index(res, "{"):]), &r); err != nil || !r.Interrupted || r.Steps <= from {
		t.Fatalf("resumed run from step %d: %+v %v (%s)", from, r, err, res)
	}
}

// children are the pids of pid's child processes.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// TestInterruptMPI: Ctrl-C on mpirun (which passes SIGTERM to the ranks)
// stops every rank after the same step: the checkpoint of that step holds
// both ranks' optimizer shards at that step, the run records the
// interruption, and it resumes on one process.
func TestInterruptMPI(t *testing.T) {
	if os.Getenv("MINITRON_MPI_TESTS") == "" && testing.Short() {
		t.Skip("mpirun test: set MINITRON_MPI_TESTS=1 with -short")
	}
	teacher, student, train := cliRunFiles(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"distill", "--teacher", teacher, "--student", student, "--data", train,
		"--seq-len", "16", "--micro-batch", "1", "--global-batch", "2", "--steps", "100000", "--threads", "1",
		"--out", out, "--json"}
	var buf bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := mpiCLI(ctx, 2, &buf, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if ls, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); bytes.Count(ls, []byte("\n")) >= 3 {
			break
		}
		if i > 6000 {
			cmd.Process.Kill()
			t.Fatalf("no steps after a minute:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait() // mpirun exits 1 after a signal, whatever the ranks did
	ev, err := os.ReadFile(filepath.Join(out, "events.jsonl"))
	if err != nil || !bytes.Contains(ev, []byte(`"interrupted"`)) {
		t.Fatalf("no interruption recorded (%v):\n%s\n%s", err, ev, buf.String())
	}
	st, err := os.ReadFile(filepath.Join(out, "checkpoints", "latest"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "checkpoints", strings.TrimSpace(string(st)))
	for _, f := range []string{"optimizer-00000-of-00002.bin", "optimizer-00001-of-00002.bin", "optimizer.index.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("checkpoint %s: %v", dir, err)
		}
	}
	from, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "step-"))
	go func() {
		for i := 0; i < 6000; i++ {
			if ls, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); bytes.Count(ls, []byte("\n")) > from+1 {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := runCLI(t, append(args, "--resume")...)
	if err != nil {
		t.Fatalf("resume alone: %v\n%s", err, res)
	}
	if !strings.Contains(res, `"interrupted":true`) {
		t.Fatalf("resumed run: %s", res)
	}
}
