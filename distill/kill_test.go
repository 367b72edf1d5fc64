//go:build unix

package distill

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// The kill trials run training in a child process (this test binary,
// re-executed with killChildEnv set) and SIGKILL it: at a chosen stage of
// a checkpoint write, or after a random delay.

const killChildEnv = "MINITRON_KILL_CHILD"

func TestMain(m *testing.M) {
	if out := os.Getenv(killChildEnv); out != "" {
		if err := killChild(out, os.Getenv("MINITRON_KILL_AT")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const killSteps = 12

// killChild runs (or resumes) the trial's training into out; at
// "stage:step" it kills itself at that stage of that step's checkpoint.
func killChild(out, at string) error {
	cfg, err := model.ParseConfig([]byte(`{"model_type": "llama", "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32, "max_position_embeddings": 64,
		"rope_theta": 10000, "rms_norm_eps": 1e-6, "hidden_act": "silu"}`))
	if err != nil {
		return err
	}
	train, err := data.NewGPTSampler(corpus(7, 10, 100, 32), data.SamplerOptions{SeqLen: 8, Seed: 1})
	if err != nil {
		return err
	}
	if at != "" {
		saveHook = func(stage string, step int) {
			if at == fmt.Sprintf("%s:%d", stage, step) {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	_, err = Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Train: train,
		SeqLen: 8, MicroBatch: 2, Steps: killSteps, LR: 1e-2, Seed: 3, Out: out, SaveEvery: 1, KeepLast: 2,
		Workers: 1, Resume: true})
	return err
}

// startChild starts a trial's child on out.
func startChild(t *testing.T, out, at string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+out, "MINITRON_KILL_AT="+at)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("child stderr: %s", stderr.String())
		}
	})
	return cmd
}

// killed reports whether a child's wait error is a SIGKILL.
func killed(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// finish resumes out until a child exits cleanly (at most a few tries).
func finish(t *testing.T, out string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		err := startChild(t, out, "").Wait()
		if err == nil {
			return
		}
		if !killed(err) {
			t.Fatalf("resuming %s: %v", out, err)
		}
	}
	t.Fatalf("resuming %s: no clean exit", out)
}

// checkTrial compares a finished trial with the uninterrupted run: the
// final weights byte for byte, each step's metrics once, no temporaries.
func checkTrial(t *testing.T, name, out string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(out, "checkpoints", stepName(killSteps), "model.safetensors"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: final weights differ from the uninterrupted run's", name)
	}
	checkEachStepOnce(t, out, killSteps)
	if left := temporaries(t, out); len(left) > 0 {
		t.Errorf("%s: temporaries left: %v", name, left)
	}
}

// TestKillTrials kills training with SIGKILL at every stage of a
// checkpoint write (the first one, a middle one, the re-save a resumed
// finished run would do) and at random moments; every trial resumes to the
// uninterrupted run's final weights, byte for byte, with no duplicated
// metrics and no leftover temporaries (about 4 s: a run takes 0.1 s).
func TestKillTrials(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	t0 := time.Now()
	if err := startChild(t, ref, "").Wait(); err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	runTime := time.Since(t0)
	want, err := os.ReadFile(filepath.Join(ref, "checkpoints", stepName(killSteps), "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	stages := []string{"weights", "optimizer", "state", "renamed", "latest"}
	steps := []int{1, 6, killSteps}
	randomTrials := 12
	trials, kills := 0, 0
	for _, step := range steps {
		for _, stage := range stages {
			name := fmt.Sprintf("kill at %s of step %d's checkpoint", stage, step)
			out := filepath.Join(dir, fmt.Sprintf("%s-%d", stage, step))
			err := startChild(t, out, fmt.Sprintf("%s:%d", stage, step)).Wait()
			if !killed(err) {
				t.Fatalf("%s: the child was not killed (%v)", name, err)
			}
			kills++
			finish(t, out)
			checkTrial(t, name, out, want)
			trials++
		}
	}
	// A finished run resumed: nothing is saved again, so a kill "during
	// the re-save" has nothing to hit.
	for _, stage := range stages {
		out := filepath.Join(dir, "resave-"+stage)
		finish(t, out)
		if err := startChild(t, out, fmt.Sprintf("%s:%d", stage, killSteps)).Wait(); err != nil {
			t.Fatalf("resumed finished run with a kill armed at %s: %v", stage, err)
		}
		checkTrial(t, "resumed finished run, kill armed at "+stage, out, want)
		trials++
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < randomTrials; i++ {
		out := filepath.Join(dir, fmt.Sprintf("random-%d", i))
		var delays []string
		for k := 0; k < 3; k++ {
			d := time.Duration(rng.Int64N(int64(runTime)))
			cmd := startChild(t, out, "")
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("random trial %d: %v", i, err)
				}
			case <-time.After(d):
				cmd.Process.Kill()
				if err := <-done; killed(err) {
					kills++
					delays = append(delays, d.Round(time.Millisecond).String())
				}
			}
		}
		finish(t, out)
		checkTrial(t, fmt.Sprintf("random trial %d (killed after %s)", i, strings.Join(delays, ", ")), out, want)
		trials++
	}
	t.Logf("%d trials, %d SIGKILLs, all resumed to the uninterrupted run's final weights (a run takes %s)", trials, kills, runTime.Round(time.Millisecond))
}
