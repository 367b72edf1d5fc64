package distill

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A run writes TensorBoard scalar events under Out/tensorboard that an
// independent reader (internal/tbevents/testdata/read_tfevents.py) reads
// back: every logged step's loss, lr, grad norm and throughput, and the
// validation, equal to metrics.jsonl's at float32 precision.
func TestTensorBoardEvents(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed: the independent reader needs it")
	}
	out := t.TempDir()
	c := crashConfig(t, out)
	c.ValSampler, c.ValBatches, c.ValEvery = sampler(t, corpus(8, 10, 100, 32), 8, 2), 1, 2
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "tensorboard", "events.out.tfevents.*"))
	if len(files) != 1 {
		t.Fatalf("event files %v, want one", files)
	}
	got, err := exec.Command("python3", "../internal/tbevents/testdata/read_tfevents.py", files[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("reader: %v\n%s", err, got)
	}
	tb := map[string]float64{} // "step tag" → value
	for _, l := range strings.Split(strings.TrimSpace(string(got)), "\n")[1:] {
		var s struct {
			Step  int
			Tag   string
			Value float64
		}
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		tb[strings.Join([]string{itoa(s.Step), s.Tag}, " ")] = s.Value
	}
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		step := int(m["step"].(float64))
		for k, tag := range map[string]string{"loss": "train/loss", "lr": "train/lr", "grad_norm": "train/grad_norm",
			"tokens_per_s": "train/tokens_per_s", "val_loss": "val/loss"} {
			v, ok := m[k].(float64)
			if !ok {
				continue
			}
			n++
			if g, ok := tb[itoa(step)+" "+tag]; !ok || g != float64(float32(v)) {
				t.Errorf("step %d %s: tensorboard %v (present %t), metrics.jsonl %v", step, tag, g, ok, v)
			}
		}
	}
	if n != 4*4+2 { // 4 train scalars a step, validation at steps 2 and 4
		t.Errorf("compared %d values, want every step's", n)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
