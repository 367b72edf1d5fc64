package distill

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// crashConfig is a tiny CE run of 4 steps with a checkpoint every 2 into out.
func crashConfig(t *testing.T, out string) Config {
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	src := corpus(7, 10, 100, 32)
	return Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, src, 8, 1),
		SeqLen: 8, MicroBatch: 2, Steps: 4, LR: 1e-2, Seed: 3, Out: out, SaveEvery: 2, Workers: 1}
}

// interruptAt runs c and cancels it (SIGINT) after step.
func interruptAt(t *testing.T, c Config, step int) Result {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.OnStep = func(m StepMetrics) {
		if m.Step == step {
			cancel()
		}
	}
	res, err := Run(ctx, c)
	if err != nil || !res.Interrupted {
		t.Fatalf("interrupted run: %+v, %v", res, err)
	}
	return res
}

// stepLines counts metrics.jsonl's lines per step.
func stepLines(t *testing.T, out string) map[int]int {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[int]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Step *int     `json:"step"`
			Loss *float64 `json:"loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("metrics.jsonl line %q: %v", sc.Text(), err)
		}
		if m.Step == nil || m.Loss == nil {
			t.Errorf("metrics.jsonl holds a line that is not a step's: %s", sc.Text())
			continue
		}
		seen[*m.Step]++
	}
	return seen
}

func checkEachStepOnce(t *testing.T, out string, steps int) {
	t.Helper()
	seen := stepLines(t, out)
	for s := 1; s <= steps; s++ {
		if seen[s] != 1 {
			t.Errorf("metrics.jsonl has %d lines for step %d, want 1", seen[s], s)
		}
	}
	if len(seen) != steps {
		t.Errorf("metrics.jsonl has steps %v, want 1..%d", seen, steps)
	}
}

// Resuming a finished run writes nothing (a re-save of the same step could
// only lose it to a kill mid-write) and reports the run's last step and
// loss; SIGINT right after a save does not save that step twice.
func TestResumeFinishedRunKeepsItsCheckpoint(t *testing.T) {
	out := t.TempDir()
	saves := map[int]int{}
	saveHook = func(stage string, step int) {
		if stage == "renamed" {
			saves[step]++
		}
	}
	defer func() { saveHook = nil }()
	c := crashConfig(t, out)
	var last float64
	c.OnStep = func(m StepMetrics) { last = m.Loss }
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	c = crashConfig(t, out)
	c.Resume = true
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 4 || res.Loss != last || !strings.HasSuffix(res.Checkpoint, "step-0000004") {
		t.Errorf("resumed finished run reports steps %d, loss %v, checkpoint %q; want 4, %v, step-0000004", res.Steps, res.Loss, res.Checkpoint, last)
	}
	if saves[4] != 1 {
		t.Errorf("step 4 was saved %d times, want once", saves[4])
	}

	// SIGINT right after the step-2 save.
	out = t.TempDir()
	saves = map[int]int{}
	interruptAt(t, crashConfig(t, out), 2)
	if saves[2] != 1 {
		t.Errorf("SIGINT at a save step saved it %d times, want once", saves[2])
	}
}

// A kill between a checkpoint's rename and the update of latest, or a lost
// latest, still resumes from the newest complete checkpoint, and a kill
// before any checkpoint resumes from step 0 without duplicated metrics.
func TestResumeWithoutLatest(t *testing.T) {
	want := t.TempDir()
	c := crashConfig(t, want)
	var wantLosses []float64
	c.OnStep = func(m StepMetrics) { wantLosses = append(wantLosses, m.Loss) }
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(out string) error
		reason string
	}{
		{"latest-lost", func(out string) error { return os.Remove(filepath.Join(out, "checkpoints", "latest")) }, "latest removed"},
		{"latest-stale", func(out string) error {
			return os.WriteFile(filepath.Join(out, "checkpoints", "latest"), []byte("step-0000002\n"), 0o644)
		}, "killed after step 3's checkpoint was renamed, before latest named it"},
		{"no-checkpoint", func(out string) error { return os.RemoveAll(filepath.Join(out, "checkpoints")) }, "killed before the first checkpoint: metrics of steps 1–3 logged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			interruptAt(t, crashConfig(t, out), 3)
			if err := tc.damage(out); err != nil {
				t.Fatal(err)
			}
			c = crashConfig(t, out)
			c.Resume = true
			var got []float64
			c.OnStep = func(m StepMetrics) { got = append(got, m.Loss) }
			res, err := Run(context.Background(), c)
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			if res.Steps != 4 {
				t.Fatalf("%s: ended at step %d", tc.reason, res.Steps)
			}
			tail := wantLosses[len(wantLosses)-len(got):]
			for i := range got {
				if got[i] != tail[i] {
					t.Errorf("%s: resumed step %d loss %v, uninterrupted %v", tc.reason, 5-len(got)+i, got[i], tail[i])
				}
			}
			checkEachStepOnce(t, out, 4)
		})
	}
}

// Out must be the run's own: a non-empty one is refused unless resumed or
// overwritten, the student's own directory always.
func TestOutIsTheRunsOwn(t *testing.T) {
	out := t.TempDir()
	if _, err := Run(context.Background(), crashConfig(t, out)); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), crashConfig(t, out))
	if err == nil || !strings.Contains(err.Error(), "is not empty") || !strings.Contains(err.Error(), "Overwrite") {
		t.Errorf("second run into a used Out: %v, want a refusal naming Resume/Overwrite", err)
	}
	c := crashConfig(t, out)
	c.Overwrite = true
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatalf("Overwrite: %v", err)
	}
	checkEachStepOnce(t, out, 4)

	student := filepath.Join(t.TempDir(), "student")
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	if err := model.SaveCheckpoint(student, cfg, model.NewRandomSource(cfg, model.F32, 1), model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	c = crashConfig(t, student+"/")
	c.StudentConfig, c.RandomInit, c.StudentDir, c.Overwrite = nil, false, student, true
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "student's checkpoint directory") {
		t.Errorf("Out = the student's directory: %v", err)
	}
}

// A failed metrics write (a full disk) fails the run; events are kept out
// of metrics.jsonl, in events.jsonl.
func TestMetricsWriteErrorsAndEvents(t *testing.T) {
	c := crashConfig(t, t.TempDir())
	c.Metrics = failingWriter{}
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "metrics.jsonl") {
		t.Errorf("metrics write error: %v, want the run to fail naming metrics.jsonl", err)
	}
	out := t.TempDir()
	interruptAt(t, crashConfig(t, out), 3)
	stepLines(t, out) // every line a step's
	b, err := os.ReadFile(filepath.Join(out, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Event string `json:"event"`
			Step  int    `json:"step"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, e.Event+":"+string(rune('0'+e.Step)))
	}
	if got := strings.Join(kinds, ","); got != "checkpoint:2,checkpoint:3,interrupted:3" {
		t.Errorf("events %s, want checkpoint:2,checkpoint:3,interrupted:3", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A killed run's temporaries are removed when the run is resumed.
func TestStaleTemporariesRemoved(t *testing.T) {
	out := t.TempDir()
	interruptAt(t, crashConfig(t, out), 3)
	ck := filepath.Join(out, "checkpoints")
	stale := []string{
		filepath.Join(ck, "step-0000004.partial", "model.safetensors"),
		filepath.Join(ck, ".step-0000004.partial.tmp-123", "model.safetensors"),
		filepath.Join(ck, ".latest.tmp-456"),
		filepath.Join(ck, ".trash-step-0000002", "config.json"),
		filepath.Join(out, ".metrics.jsonl.tmp-789"),
		filepath.Join(out, ".write-test-1"),
	}
	for _, p := range stale {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := crashConfig(t, out)
	c.Resume = true
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if left := temporaries(t, out); len(left) > 0 {
		t.Errorf("temporaries left after resuming: %v", left)
	}
}

// temporaries lists what under out is not a run's published file.
func temporaries(t *testing.T, out string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		n := d.Name()
		if strings.HasSuffix(n, ".partial") || strings.HasPrefix(n, trashPrefix) || strings.Contains(n, ".tmp-") || strings.HasPrefix(n, ".write-test-") {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// A resume with another teacher or another number of kernel workers is
// refused, naming the difference; so is one with other settings.
func TestResumeRefusesAnotherTeacherOrWorkers(t *testing.T) {
	teacher, scfg, ssrc := prunedPair(t)
	src := corpus(2, 10, 100, 64)
	out := t.TempDir()
	base := func() Config {
		return Config{StudentConfig: scfg, StudentWeights: ssrc, Teacher: teacher, Train: sampler(t, src, 8, 1),
			SeqLen: 8, MicroBatch: 2, Steps: 4, LR: 1e-3, Seed: 3, Out: out, SaveEvery: 2, Workers: 1}
	}
	interruptAt(t, base(), 2)
	other, _, _ := prunedPair(t)
	osrc := model.NewRandomSource(other.Cfg, model.F32, 99)
	otherTeacher, err := model.New(other.Cfg, osrc, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		set    func(*Config)
		want   string
		reason string
	}{
		{func(c *Config) { c.Teacher = otherTeacher }, "another teacher", "a teacher with other weights"},
		{func(c *Config) { c.Workers = 2 }, "kernel workers", "another worker count"},
		{func(c *Config) { c.LR = 2e-3 }, "lr 0.001 in the checkpoint, 0.002 now", "another learning rate, named"},
	} {
		c := base()
		c.Resume = true
		tc.set(&c)
		if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.reason, err, tc.want)
		}
	}
	c := base()
	c.Resume = true
	if _, err := Run(context.Background(), c); err != nil {
		t.Errorf("the same settings: %v", err)
	}
}

// Run refuses the numbers validateNumbers refuses, before any work: a
// negative KeepLast or SaveEvery, a learning rate that is not positive.
func TestRunRefusesBadNumbers(t *testing.T) {
	for _, tc := range []struct {
		set    func(*Config)
		want   string
		reason string
	}{
		{func(c *Config) { c.KeepLast = -1 }, "KeepLast", "negative checkpoints to keep"},
		{func(c *Config) { c.SaveEvery = -2 }, "SaveEvery", "negative checkpoint interval"},
		{func(c *Config) { c.LR = -1e-3 }, "LR", "negative learning rate"},
	} {
		out := t.TempDir()
		c := crashConfig(t, out)
		tc.set(&c)
		if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.reason, err, tc.want)
		}
		if ents, _ := os.ReadDir(out); len(ents) > 0 {
			t.Errorf("%s: the refused run wrote into Out", tc.reason)
		}
	}
}
