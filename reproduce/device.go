package reproduce

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/minitron-dev/minitron/device"
)

// devSpec is where a run's compute stages (training, importance,
// evaluation) run. Tokenizer, data, tasks and pruning run on the CPU
// whatever the device.
type devSpec struct {
	kind   device.Kind // device.CPU or device.CUDA
	noTF32 bool
}

func (d devSpec) cuda() bool { return d.kind.IsCUDA() }

// String is how markers and the report name the device.
func (d devSpec) String() string {
	switch {
	case !d.cuda():
		return device.CPU.String()
	case d.noTF32:
		return device.CUDA.String() + " (f32 products)"
	}
	return device.CUDA.String() + " (TF32 products)"
}

// parseDevice checks Options.Device (with the one device parser) and
// NoTF32 and, for cuda, that this binary has the CUDA backend and GPU 0
// opens: before any stage runs, so a CPU build fails at once. gpu names
// the device (empty on the CPU).
func parseDevice(o Options) (d devSpec, gpu string, err error) {
	k, err := device.ParseBuilt(string(o.Device))
	if err != nil {
		return d, "", err
	}
	if !k.IsCUDA() {
		if o.NoTF32 {
			return d, "", fmt.Errorf("NoTF32 needs Device cuda (the CPU computes in f32)")
		}
		return devSpec{kind: device.CPU}, "", nil
	}
	if gpu, err = openGPU(); err != nil {
		return d, "", err
	}
	return devSpec{kind: device.CUDA, noTF32: o.NoTF32}, gpu, nil
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
			if got := markerDevice(m); got != d.kind.String() {
				rel, _ := filepath.Rel(out, dir)
				return fmt.Errorf("%s holds a %s run (stage %s); this run is on %s and would replace it: use another output directory (Out) for the %s run",
					out, got, rel, d.kind, d.kind)
			}
		}
	}
	return nil
}

// markerDevice is the device a finished stage ran on: markers written
// before devices existed, and every CPU marker, name none.
func markerDevice(m stageMarker) string {
	if m.Device == "" {
		return device.CPU.String()
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
