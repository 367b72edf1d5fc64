package distill

import (
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// TestBenchPrint is a manual throughput probe (MINITRON_BENCH=1).
func TestBenchPrint(t *testing.T) {
	if os.Getenv("MINITRON_BENCH") == "" {
		t.Skip("set MINITRON_BENCH=1")
	}
	cfg := tinyConfig(t, "nemotron", 4, 256, 4, 2, 1024, 4096)
	r, err := Bench(BenchOptions{Cfg: cfg, Batch: 8, Seq: 128, Loss: os.Getenv("MINITRON_BENCH_LOSS")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
}

func TestBenchOpTimes(t *testing.T) {
	if os.Getenv("MINITRON_BENCH") == "" {
		t.Skip("set MINITRON_BENCH=1")
	}
	times := map[string]time.Duration{}
	opTiming = func(name string, d time.Duration) {
		if i := strings.IndexByte(name, '.'); i > 0 && name[0] == 'L' {
			name = name[i+1:]
		}
		times[name] += d
	}
	defer func() { opTiming = nil }()
	cfg := tinyConfig(t, "nemotron", 4, 256, 4, 2, 1024, 4096)
	r, err := Bench(BenchOptions{Cfg: cfg, Batch: 8, Seq: 128, Steps: 5, Workers: envInt("MINITRON_WORKERS")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total time.Duration
	for n, d := range times {
		names = append(names, n)
		total += d
	}
	sort.Slice(names, func(i, j int) bool { return times[names[i]] > times[names[j]] })
	for _, n := range names {
		t.Logf("%-16s %8.2f ms/step", n, float64(times[n].Microseconds())/7000)
	}
	t.Logf("ops total %.2f ms/step; best step %.2f ms", float64(total.Microseconds())/7000, r.BestStepS*1000)
}

// BenchmarkTrainStep times one full CE training step (forward, backward,
// grad norm, AdamW) at the bench shape and reports allocations per step
// (the step is meant to allocate almost nothing: buffers live in the ops).
// MINITRON_WORKERS sets the kernel goroutines (default GOMAXPROCS).
func BenchmarkTrainStep(b *testing.B) {
	if w := envInt("MINITRON_WORKERS"); w > 0 {
		defer kernels.SetWorkers(kernels.SetWorkers(w))
	}
	kernels.SetBLASThreads(1)
	cfg := tinyConfig(b, "nemotron", 4, 256, 4, 2, 1024, 4096)
	arch, err := model.NewArch(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := NewTrainer(device.CPU, EngineConfig{Arch: arch, Weights: model.NewRandomSource(cfg, model.F32, 0),
		Batch: 8, Seq: 128, Losses: Losses{CE: 1}, Optim: DefaultOptim()}, Schedule{LR: 1e-4, MinLR: 1e-4})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Engine.Close()
	micro := [][][]int32{randomBatch(rand.New(rand.NewSource(1)), 8, 128, cfg.VocabSize)}
	for i := 0; i < 2; i++ {
		if _, err := tr.TrainStep(micro, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.TrainStep(micro, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(8*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}
