package distill

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
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

func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}
