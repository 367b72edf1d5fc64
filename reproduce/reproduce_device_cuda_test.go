//go:build minitron_cuda || minitron_cudaemu

package reproduce

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/device"
)

// TestReproduceDeviceCUDA runs the whole pipeline (tinyRunConfig) on the
// CPU and on the device with full f32 products, then checks that every
// compute stage ran on the device and said so, that the CPU-only stages'
// keys are shared while the compute stages' are not, that the numbers agree
// with the CPU's, that a re-run is all cached, and that neither device's run
// directory is taken over by the other.
func TestReproduceDeviceCUDA(t *testing.T) {
	c := tinyRunConfig()
	root := t.TempDir()
	cpuOut, gpuOut := filepath.Join(root, "cpu"), filepath.Join(root, "cuda")
	cpu, err := Run(context.Background(), Options{Out: cpuOut, Config: c})
	if err != nil {
		t.Fatalf("cpu: %v", err)
	}
	var log strings.Builder
	o := Options{Out: gpuOut, Config: c, Device: device.CUDA, NoTF32: true, Log: &log}
	gpu, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("cuda: %v\nlog:\n%s", err, log.String())
	}

	if gpu.Device != "cuda (f32 products)" || gpu.GPU == "" || cpu.Device != "cpu" || cpu.GPU != "" {
		t.Errorf("result devices: cpu %q/%q, cuda %q/%q", cpu.Device, cpu.GPU, gpu.Device, gpu.GPU)
	}
	compute := func(name string) bool {
		return name == "teacher" || name == "importance" || strings.HasPrefix(name, "train/") || strings.HasPrefix(name, "eval/")
	}
	if len(gpu.Stages) != len(cpu.Stages) {
		t.Fatalf("%d stages on cuda, %d on the CPU", len(gpu.Stages), len(cpu.Stages))
	}
	for i, s := range gpu.Stages {
		m, ok := readMarker(filepath.Join(gpuOut, s.Name))
		if !ok {
			t.Fatalf("%s: no marker", s.Name)
		}
		cm, _ := readMarker(filepath.Join(cpuOut, cpu.Stages[i].Name))
		if compute(s.Name) {
			if m.Device != "cuda" || m.GPU != gpu.GPU || !m.NoTF32 || s.Device != gpu.Device {
				t.Errorf("%s: marker device %q gpu %q no-tf32 %v, stage device %q: want the run's device", s.Name, m.Device, m.GPU, m.NoTF32, s.Device)
			}
		} else if m.Device != "" || s.Device != "cpu" {
			t.Errorf("%s runs on the CPU in every run, its marker says %q (stage %q)", s.Name, m.Device, s.Device)
		}
		if cm.Device != "" {
			t.Errorf("CPU marker of %s names a device %q", s.Name, cm.Device)
		}
		// Tokenizer, data and tasks are the same work on both devices;
		// everything from the teacher on is not (pruning reads its scores
		// or weights).
		shared := s.Name == "tokenizer" || s.Name == "data" || s.Name == "tasks"
		if (m.Key == cm.Key) != shared {
			t.Errorf("%s: cuda key %s, cpu key %s: equal should be %v", s.Name, m.Key, cm.Key, shared)
		}
	}

	// Same models, the same numbers up to float32 rounding on the device:
	// 1-2 steps per run from the same data, no TF32 (the emulator agrees
	// to about 5e-8; a GPU's reduction orders differ more).
	if len(gpu.Models) != len(cpu.Models) {
		t.Fatalf("%d models on cuda, %d on the CPU", len(gpu.Models), len(cpu.Models))
	}
	worst := 0.0
	for i, g := range gpu.Models {
		cm := cpu.Models[i]
		if g.Name != cm.Name || g.Arch != cm.Arch {
			t.Errorf("model %d: cuda %s %v, cpu %s %v", i, g.Name, g.Arch, cm.Name, cm.Arch)
			continue
		}
		for _, cp := range Corpora {
			gl, cl := g.Eval.PPL[cp.Key].Loss, cm.Eval.PPL[cp.Key].Loss
			worst = max(worst, math.Abs(gl-cl)/math.Abs(cl))
			if math.IsNaN(gl) || math.Abs(gl-cl) > 1e-4*math.Abs(cl) {
				t.Errorf("%s: %s loss %.6f on cuda, %.6f on the CPU", g.Name, cp.Key, gl, cl)
			}
			if gt, ct := g.Eval.Tasks[cp.Key], cm.Eval.Tasks[cp.Key]; gt.N != ct.N {
				t.Errorf("%s: %s task %d items on cuda, %d on the CPU", g.Name, cp.Key, gt.N, ct.N)
			}
		}
	}

	t.Logf("%d models: held-out losses within %.1e relative of the CPU's", len(gpu.Models), worst)

	rep, err := os.ReadFile(filepath.Join(gpuOut, "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "- Device: cuda (f32 products) on GPU 0, " + gpu.GPU; !strings.Contains(string(rep), want) {
		t.Errorf("REPORT.md lacks %q", want)
	}
	if want := "| eval/teacher | "; !strings.Contains(string(rep), want) || !strings.Contains(string(rep), "| cuda (f32 products), "+gpu.GPU+" |") {
		t.Errorf("REPORT.md's stage table does not name the device")
	}

	// Re-run: all cached. The other device's directory is refused, not
	// reused or overwritten.
	o.Log = nil
	again, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Skipped() != len(again.Stages) {
		t.Errorf("cuda re-run ran %d of %d stages again", len(again.Stages)-again.Skipped(), len(again.Stages))
	}
	if _, err := Run(context.Background(), Options{Out: cpuOut, Config: c, Device: device.CUDA}); err == nil || !strings.Contains(err.Error(), "holds a cpu run") {
		t.Errorf("cuda run into the CPU run's directory: %v", err)
	}
	if _, err := Run(context.Background(), Options{Out: gpuOut, Config: c}); err == nil || !strings.Contains(err.Error(), "holds a cuda run") {
		t.Errorf("CPU run into the cuda run's directory: %v", err)
	}
	for _, s := range cpu.Stages {
		if m, ok := readMarker(filepath.Join(cpuOut, s.Name)); !ok || m.Device != "" {
			t.Errorf("the CPU run's stage %s is gone or changed: %+v", s.Name, m)
		}
	}
}
