package tbevents

import (
	"encoding/json"
	"math"
	"os/exec"
	"strings"
	"testing"
)

// The files read back with an independent reader (testdata/read_tfevents.py,
// written from TensorFlow's record and protobuf definitions): every
// record's CRCs check, the version event comes first, and the scalars come
// back with their steps (as float32, TensorBoard's precision).
func TestIndependentReader(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed: the independent reader needs it")
	}
	w, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := []map[string]float64{{"train/loss": 4.5, "train/lr": 2e-4}, {"train/loss": 3.25, "val/loss": 3.5}}
	for i, v := range in {
		if err := w.Scalars(int64(10*(i+1)), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", "testdata/read_tfevents.py", w.Path()).CombinedOutput()
	if err != nil {
		t.Fatalf("reader: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{`{"file_version": "brain.Event:2"}`}
	got := []string{lines[0]}
	type scalar struct {
		Step  int64   `json:"step"`
		Tag   string  `json:"tag"`
		Value float64 `json:"value"`
	}
	var scalars []scalar
	for _, l := range lines[1:] {
		var s scalar
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("reader line %q: %v", l, err)
		}
		scalars = append(scalars, s)
	}
	if got[0] != want[0] {
		t.Errorf("first event %s, want %s", got[0], want[0])
	}
	wantS := []scalar{{10, "train/loss", 4.5}, {10, "train/lr", 2e-4}, {20, "train/loss", 3.25}, {20, "val/loss", 3.5}}
	if len(scalars) != len(wantS) {
		t.Fatalf("scalars %+v, want %+v", scalars, wantS)
	}
	for i, s := range scalars {
		w := wantS[i]
		if s.Step != w.Step || s.Tag != w.Tag || math.Abs(s.Value-float64(float32(w.Value))) > 0 {
			t.Errorf("scalar %d: %+v, want %+v", i, s, w)
		}
	}
}
