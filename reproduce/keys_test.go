package reproduce

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
)

// planKeys computes every stage key of a run of c on device d without
// running anything, from the same pieces the pipeline uses (key functions,
// teacherSpec, widthTarget, depthTarget, studentRuns). The width-pruned
// students' configs (the from-scratch baselines' shapes, read from the
// pruned checkpoints in a run) come from scratch, by student name.
func planKeys(t *testing.T, c Config, d devSpec, scratch map[string]*model.Config) map[string]string {
	t.Helper()
	k := map[string]string{}
	k["tokenizer"] = tokenizerKey(c)
	k["data"] = dataKey(c, k["tokenizer"])
	k["tasks"] = tasksKey(c, k["data"])
	ts, err := teacherSpec(c, k["data"])
	if err != nil {
		t.Fatal(err)
	}
	k["teacher"] = trainKey(c, d, ts)
	k["importance"] = importanceKey(c, d, k["teacher"])
	model := map[string]string{"teacher": k["teacher"]} // model name → key of the stage that made it
	lossOnly := map[string]bool{}                       // models evaluated without the tasks
	tcfg, err := c.teacherConfig()
	if err != nil {
		t.Fatal(err)
	}
	for si, frac := range c.StudentFractions {
		w := fmt.Sprintf("w%g", math.Round(frac*100))
		wt, err := widthTarget(tcfg, frac)
		if err != nil {
			t.Fatal(err)
		}
		layers := depthTarget(tcfg, frac)
		et, err := eqTotalTarget(tcfg, layers)
		if err != nil {
			t.Fatal(err)
		}
		kw := pruneWidthKey(k["importance"], wt)
		kd := pruneDepthKey(k["importance"], layers)
		ke := pruneWidthKey(k["importance"], et)
		k["prune/"+w], k["prune/"+w+"-depth"], k["prune/"+w+"-eqtotal"] = kw, kd, ke
		model[w+"-pruned"], model[w+"-depth-pruned"], model[w+"-eqtotal-pruned"] = kw, kd, ke
		scfg := scratch[w]
		if scfg == nil {
			t.Fatalf("no scratch config for %s", w)
		}
		in := studentInputs{width: "pw", depth: "pd", eqTotal: "pe", teacher: "t",
			scratch: scfg, kw: kw, kd: kd, ke: ke, teacherKey: k["teacher"]}
		for s := 1; s <= c.Seeds; s++ {
			rel := "prune/" + w + "-random"
			if s > 1 {
				rel = seedName(rel, s)
			}
			k[rel] = pruneRandomKey(k["teacher"], wt, c.seedOf(s))
			in.random, in.kr = append(in.random, "pr"), append(in.kr, k[rel])
		}
		model[w+"-random-pruned"] = k["prune/"+w+"-random"]
		for _, r := range studentRuns(c, si, w, in) {
			k["train/"+r.name] = trainKey(c, d, r.spec)
			model[r.name] = k["train/"+r.name]
			if r.seed > 1 {
				lossOnly[r.name] = true
			}
		}
	}
	for name, mk := range model {
		tk := k["tasks"]
		if lossOnly[name] {
			tk = "" // later seeds are scored on the losses only
		}
		k["eval/"+name] = evalKey(c, d, mk, k["data"], tk)
	}
	return k
}

// updateKeys regenerates testdata/full_stage_keys.json and the pruned
// students' configs from a real run directory of FullConfig: the configs
// are copied from its prune/ stages, and the keys planned from them must
// equal every key its STAGE_DONE.json files hold (a run cut short checks
// the stages it finished).
var updateKeys = flag.String("update-keys", "", "regenerate testdata/full_*.json from this `minitron reproduce` run `directory`")

func regenerateKeys(t *testing.T, run string) {
	for _, w := range []string{"w50", "w25"} {
		b, err := os.ReadFile(filepath.Join(run, "prune", w, "model", model.ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "full_"+w+"_config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys := planKeys(t, FullConfig(), devSpec{kind: device.CPU}, fullScratchConfigs(t))
	checked := 0
	for name, k := range keys {
		m, ok := readMarker(filepath.Join(run, filepath.FromSlash(name)))
		if !ok {
			continue
		}
		if m.Key != k {
			t.Fatalf("stage %s: planned key %s, the run %s has %s", name, k, run, m.Key)
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("%s holds no finished stage of FullConfig", run)
	}
	b, err := json.MarshalIndent(keys, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "full_stage_keys.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d stage keys; %d of them checked against %s", len(keys), checked, run)
}

func fullScratchConfigs(t *testing.T) map[string]*model.Config {
	t.Helper()
	out := map[string]*model.Config{}
	for _, w := range []string{"w50", "w25"} {
		cfg, err := model.LoadConfig(filepath.Join("testdata", "full_"+w+"_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		out[w] = cfg
	}
	return out
}

// TestStageKeysCPUUnchanged pins the CPU keys of the default run
// (FullConfig) to those of a real `minitron reproduce` run directory
// (testdata/full_stage_keys.json, regenerated with -update-keys RUN when
// the protocol changes; the pruned students' configs beside it). A
// changed CPU key would recompute every existing run directory's stages;
// the device's keys must leave the CPU's as they are.
func TestStageKeysCPUUnchanged(t *testing.T) {
	if *updateKeys != "" {
		regenerateKeys(t, *updateKeys)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "full_stage_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	got := planKeys(t, FullConfig(), devSpec{kind: device.CPU}, fullScratchConfigs(t))
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if got[n] != want[n] {
			t.Errorf("stage %s: key %q, the existing run has %q", n, got[n], want[n])
		}
	}
}

// TestStageKeysDevice checks which keys a device changes: every stage that
// computes on it and everything downstream, not the CPU-only inputs; TF32
// on and off are different keys too.
func TestStageKeysDevice(t *testing.T) {
	c, scratch := FullConfig(), fullScratchConfigs(t)
	cpu := planKeys(t, c, devSpec{kind: device.CPU}, scratch)
	tf32 := planKeys(t, c, devSpec{kind: device.CUDA}, scratch)
	f32 := planKeys(t, c, devSpec{kind: device.CUDA, noTF32: true}, scratch)
	for n, k := range cpu {
		shared := n == "tokenizer" || n == "data" || n == "tasks"
		if got := tf32[n] == k; got != shared {
			t.Errorf("stage %s: cuda key equal to the CPU's: %v, want %v", n, got, shared)
		}
		if got := f32[n] == tf32[n]; got != shared {
			t.Errorf("stage %s: the no-TF32 key equal to the TF32 one: %v, want %v", n, got, shared)
		}
	}
	if len(tf32) != len(cpu) || len(f32) != len(cpu) {
		t.Errorf("%d cpu stages, %d cuda, %d cuda no-TF32: the device must not change which stages run", len(cpu), len(tf32), len(f32))
	}
}

func TestParseDevice(t *testing.T) {
	for _, tc := range []struct {
		o      Options
		want   string // device, or the error's text
		reason string
	}{
		{Options{}, "cpu", "the default is the CPU"},
		{Options{Device: "cpu"}, "cpu", "cpu by name"},
		{Options{Device: "gpu"}, `device "gpu": want cpu or cuda`, "an unknown device"},
		{Options{Device: "CPU"}, "cpu", "device names go through device.Parse: any case"},
		{Options{NoTF32: true}, "NoTF32 needs Device cuda", "TF32 is a GPU setting"},
	} {
		d, gpu, err := parseDevice(tc.o)
		got := d.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) || (err == nil && gpu != "") {
			t.Errorf("%s: %q (gpu %q), want %q", tc.reason, got, gpu, tc.want)
		}
	}
}

// TestRunDeviceGuard: a run directory holds one device's run; stages that
// do not depend on the device (tokenizer, data, prune) do not count.
func TestRunDeviceGuard(t *testing.T) {
	marker := func(dir string, m stageMarker) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, markerName), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cpu, cuda := devSpec{kind: device.CPU}, devSpec{kind: device.CUDA}

	empty := filepath.Join(t.TempDir(), "none")
	for _, d := range []devSpec{cpu, cuda} {
		if err := checkRunDevice(empty, d); err != nil {
			t.Errorf("a missing directory is free for %s: %v", d, err)
		}
	}

	cpuRun := t.TempDir()
	marker(filepath.Join(cpuRun, "tokenizer"), stageMarker{Key: "a"})
	marker(filepath.Join(cpuRun, "train", "w50-kd"), stageMarker{Key: "b"}) // no device field: before devices existed
	if err := checkRunDevice(cpuRun, cpu); err != nil {
		t.Errorf("a CPU run continues on the CPU: %v", err)
	}
	err := checkRunDevice(cpuRun, cuda)
	if err == nil || !strings.Contains(err.Error(), "holds a cpu run (stage train/w50-kd)") || !strings.Contains(err.Error(), "(Out)") {
		t.Errorf("a cuda run into a CPU run's directory: %v, want a refusal naming the stage and Out", err)
	}

	gpuRun := t.TempDir()
	marker(filepath.Join(gpuRun, "prune", "w50"), stageMarker{Key: "c"}) // CPU-only stage of a cuda run
	marker(filepath.Join(gpuRun, "eval", "teacher"), stageMarker{Key: "d", Device: "cuda", GPU: "H100"})
	if err := checkRunDevice(gpuRun, cuda); err != nil {
		t.Errorf("a cuda run continues on cuda: %v", err)
	}
	if err := checkRunDevice(gpuRun, cpu); err == nil || !strings.Contains(err.Error(), "holds a cuda run (stage eval/teacher)") {
		t.Errorf("a CPU run into a cuda run's directory: %v", err)
	}
}

func TestDeviceLine(t *testing.T) {
	for _, tc := range []struct {
		r      Result
		want   string
		reason string
	}{
		{Result{Device: "cpu"}, "cpu (every stage)", "a CPU run"},
		{Result{Device: "cuda (TF32 products)", GPU: "NVIDIA H100 80GB HBM3", Stages: []StageRun{{Name: "teacher", Device: "cuda (TF32 products)", GPU: "NVIDIA H100 80GB HBM3"}}},
			"cuda (TF32 products) on GPU 0, NVIDIA H100 80GB HBM3: training, distillation, importance scoring and evaluation; tokenizer, data, tasks and pruning on the CPU",
			"a GPU run names the GPU and what ran on it"},
		{Result{Device: "cuda (TF32 products)", GPU: "NVIDIA H100", Stages: []StageRun{{Name: "teacher", Skipped: true, Device: "cuda (TF32 products)", GPU: "NVIDIA A100"}}},
			"; cached stages from an earlier invocation ran on NVIDIA A100", "stages cached from another GPU are named"},
	} {
		if got := deviceLine(&tc.r); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want it to contain %q", tc.reason, got, tc.want)
		}
	}
}
