package distill

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenRun is a fixed CPU distillation (CE + KL + intermediate-state loss,
// 2 micro-batches a step, validation) interrupted after step 3 and resumed.
// It returns the run's metrics.jsonl without its timing fields and with the
// output directory replaced by OUT, and the final model.safetensors.
func goldenRun(t *testing.T) (metrics, weights []byte) {
	teacher, scfg, ssrc := prunedPair(t)
	src := corpus(4, 30, 300, 64)
	out := t.TempDir()
	base := func() Config {
		return Config{StudentConfig: scfg, StudentWeights: ssrc, Teacher: teacher,
			Train: sampler(t, src, 16, 5), ValSampler: sampler(t, src, 16, 77), ValBatches: 2, ValEvery: 2,
			SeqLen: 16, MicroBatch: 2, GlobalBatch: 4, Steps: 6, LR: 3e-3, MinLR: 3e-4, Warmup: 2,
			WeightDecay: 0.01, Seed: 11, Workers: 1, Out: out, SaveEvery: 2,
			Losses: Losses{CE: 0.5, KL: 1, Intermediate: []LayerPair{{Student: 1, Teacher: 1}, {Student: 2, Teacher: 2}}}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := base()
	c.OnStep = func(m StepMetrics) {
		if m.Step == 3 {
			cancel()
		}
	}
	res, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Steps != 3 {
		t.Fatalf("interrupted run: %+v", res)
	}
	// The samplers were consumed by the first run: fresh ones, positioned
	// by the checkpoint.
	c = base()
	c.Resume = true
	if res, err = Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 {
		t.Fatalf("resumed run ended at step %d", res.Steps)
	}
	raw, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var norm bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		delete(m, "tokens_per_s")
		if ck, ok := m["checkpoint"].(string); ok {
			m["checkpoint"] = strings.Replace(ck, out, "OUT", 1)
		}
		b, _ := json.Marshal(m) // sorted keys: a stable form
		norm.Write(append(b, '\n'))
	}
	w, err := os.ReadFile(filepath.Join(out, "checkpoints", "step-0000006", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return norm.Bytes(), w
}

// TestGoldenCPURun pins the CPU training path byte for byte: the metrics
// and final weights of goldenRun were recorded before the training core
// was shared with the device engine (go test -run GoldenCPURun -update
// rewrites them, which only a deliberate change of the CPU numerics may).
func TestGoldenCPURun(t *testing.T) {
	metrics, weights := goldenRun(t)
	sum := sha256.Sum256(weights)
	got := hex.EncodeToString(sum[:]) + "\n"
	mPath := filepath.Join("testdata", "golden", "cpu_run.metrics.jsonl")
	wPath := filepath.Join("testdata", "golden", "cpu_run.safetensors.sha256")
	if *update {
		if err := os.MkdirAll(filepath.Dir(mPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mPath, metrics, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(wPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantM, err := os.ReadFile(mPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(metrics, wantM) {
		t.Errorf("metrics.jsonl differs from %s:\ngot:\n%s\nwant:\n%s", mPath, metrics, wantM)
	}
	wantW, err := os.ReadFile(wPath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(wantW) {
		t.Errorf("final model.safetensors has sha256 %s, %s says %s", strings.TrimSpace(got), wPath, strings.TrimSpace(string(wantW)))
	}
}
