package reproduce

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stageMarker is written last into a finished stage's directory. Its Key is
// a hash of everything the stage's result depends on, so changing a setting
// reruns the stage while an unchanged re-run skips it.
type stageMarker struct {
	Stage    string    `json:"stage"`
	Key      string    `json:"key"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	// Device is "cuda" for a stage computed on a GPU (empty on the CPU, so
	// CPU markers read as before); GPU names it and NoTF32 says its f32
	// products were not rounded to TF32.
	Device string `json:"device,omitempty"`
	GPU    string `json:"gpu,omitempty"`
	NoTF32 bool   `json:"no_tf32,omitempty"`
	// BLASCore is the OpenBLAS kernel set a CPU compute stage ran on (it
	// sets the float rounding; not part of the key, so a run directory
	// may mix them and the report says so).
	BLASCore string `json:"blas_core,omitempty"`
}

const markerName = "STAGE_DONE.json"

// StageKey hashes the settings a stage depends on.
func StageKey(parts ...any) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range parts {
		_ = enc.Encode(p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// StageDone reports whether dir holds a finished stage with this key.
func StageDone(dir, key string) bool {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return false
	}
	var m stageMarker
	return json.Unmarshal(b, &m) == nil && m.Key == key
}

// RunStage runs fn in a fresh temporary directory beside dir and renames it
// into place when fn succeeds, so dir is either absent, stale (other key) or
// complete, never half-written. It returns skipped=true when dir already
// holds this key's result.
func RunStage(name, dir, key string, fn func(tmp string) error) (skipped bool, err error) {
	return runStage(name, dir, key, stageMarker{}, fn)
}

// runStage is RunStage writing m's device fields into the marker.
func runStage(name, dir, key string, m stageMarker, fn func(tmp string) error) (skipped bool, err error) {
	if StageDone(dir, key) {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return false, err
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return false, err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return false, err
	}
	start := time.Now()
	if err := fn(tmp); err != nil {
		return false, fmt.Errorf("stage %s: %w", name, err)
	}
	m.Stage, m.Key, m.Finished, m.Seconds = name, key, time.Now().UTC(), time.Since(start).Seconds()
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, markerName), b, 0o644); err != nil {
		return false, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	return false, os.Rename(tmp, dir)
}
