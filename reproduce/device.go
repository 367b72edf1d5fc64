package reproduce

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Devices Options.Device accepts.
const (
	DeviceCPU  = "cpu"
	DeviceCUDA = "cuda"
)

// devSpec is where a run's compute stages (training, importance,
// evaluation) run. Tokenizer, data, tasks and pruning run on the CPU
// whatever the device.
type devSpec struct {
	name   string // DeviceCPU or DeviceCUDA
	noTF32 bool
}

func (d devSpec) cuda() bool { return d.name == DeviceCUDA }

// String is how markers and the report name the device.
func (d devSpec) String() string {
	switch {
	case !d.cuda():
		return DeviceCPU
	case d.noTF32:
		return DeviceCUDA + " (f32 products)"
	}
	return DeviceCUDA + " (TF32 products)"
}

// parseDevice checks Options.Device and NoTF32 and, for cuda, that this
// binary has the CUDA backend and GPU 0 opens: before any stage runs, so a
// CPU build fails at once. gpu names the device (empty on the CPU).
func parseDevice(o Options) (d devSpec, gpu string, err error) {
	switch o.Device {
	case "", DeviceCPU:
		if o.NoTF32 {
			return d, "", fmt.Errorf("--no-tf32 needs --device cuda (the CPU computes in f32)")
		}
		return devSpec{name: DeviceCPU}, "", nil
	case DeviceCUDA:
		gpu, err := openGPU()
		if err != nil {
			return d, "", err
		}
		return devSpec{name: DeviceCUDA, noTF32: o.NoTF32}, gpu, nil
	}
	return d, "", fmt.Errorf("--device %q: want cpu or cuda", o.Device)
}

// deviceStages are the run-relative directories of the stages whose
// numbers depend on the device (train/* and eval/* are globs).
var deviceStages = []string{"teacher", "importance", "train/*", "eval/*"}

// checkRunDevice refuses a run directory whose device-dependent stages were
// computed on another device. Reusing them would pass one device's numbers
// off as another's; recomputing them in place would throw away that
// device's cache. One directory holds one device's run.
func checkRunDevice(out string, d devSpec) error {
	for _, pat := range deviceStages {
		dirs, err := filepath.Glob(filepath.Join(out, pat))
		if err != nil {
			return err
		}
		sort.Strings(dirs)
		for _, dir := range dirs {
			m, ok := readMarker(dir)
			if !ok {
				continue
			}
			if got := markerDevice(m); got != d.name {
				rel, _ := filepath.Rel(out, dir)
				return fmt.Errorf("%s holds a %s run (stage %s); this run is on %s and would replace it: use another output directory (--out) for the %s run",
					out, got, rel, d.name, d.name)
			}
		}
	}
	return nil
}

// markerDevice is the device a finished stage ran on: markers written
// before devices existed, and every CPU marker, name none.
func markerDevice(m stageMarker) string {
	if m.Device == "" {
		return DeviceCPU
	}
	return m.Device
}

// readMarker reads the completion marker of the stage in dir.
func readMarker(dir string) (stageMarker, bool) {
	var m stageMarker
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return m, false
	}
	return m, true
}
