//go:build minitron_cuda || minitron_cudaemu

package cuda_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Without a usable GPU this binary never gets here: package gpuprobe's init
// prints "skipped: no usable CUDA GPU: …" and exits 0 before
// gorgonia.org/cu's init would exit 1 (see gpuprobe's doc).
var dev *cuda.Device

func TestMain(m *testing.M) {
	d, err := cuda.Open(0)
	if err != nil {
		// The driver reported a GPU, so failing to use it is a failure.
		fmt.Fprintln(os.Stderr, "cuda.Open(0):", err)
		os.Exit(1)
	}
	dev = d
	fmt.Printf("device: %s (sm_%d%d, %d SMs), cuBLAS %d\n", d.Name, d.CC[0], d.CC[1], d.SMs, d.BLASVersion())
	code := m.Run()
	if err := d.Close(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "Close:", err)
		code = 1
	}
	os.Exit(code)
}

func randn(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func up(t *testing.T, x []float32) cuda.Buf {
	t.Helper()
	b, err := dev.Upload(x)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Free(b) })
	return b
}

func upInts(t *testing.T, x []int) cuda.Buf {
	t.Helper()
	b, err := dev.UploadInts(x)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Free(b) })
	return b
}

func alloc(t *testing.T, n int) cuda.Buf {
	t.Helper()
	b, err := dev.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Zero(b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Free(b) })
	return b
}

func down(t *testing.T, b cuda.Buf) []float32 {
	t.Helper()
	x := make([]float32, b.N)
	if err := dev.Download(x, b); err != nil {
		t.Fatal(err)
	}
	return x
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// near fails unless |got−want| ≤ atol + rtol·|want| everywhere (NaN/Inf
// must match exactly), reporting the worst element.
func near(t *testing.T, what string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, wi := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) || math.IsInf(w, 0) {
			if !(g == w || (math.IsNaN(g) && math.IsNaN(w))) {
				t.Fatalf("%s[%d] = %v, want %v", what, i, g, w)
			}
			continue
		}
		excess := math.Abs(g-w) - (atol + rtol*math.Abs(w))
		if math.IsNaN(g) || excess > worst {
			worst, wi = excess, i
			if math.IsNaN(g) {
				worst = math.Inf(1)
			}
		}
	}
	if wi >= 0 {
		t.Errorf("%s[%d] = %v, want %v (tolerance %g + %g·|want|)", what, wi, got[wi], want[wi], atol, rtol)
	}
}
