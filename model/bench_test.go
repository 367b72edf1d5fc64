package model

import (
	"testing"
)

// benchModel is the acceptance bench config (nemotron, 4 layers, H 256,
// 4 heads / 2 KV, F 1024, V 4096) with random resident weights.
func benchModel(b testing.TB) *Model {
	cfg, err := SyntheticConfig(Nemotron, 4, 256, 4, 2, 1024, 4096)
	if err != nil {
		b.Fatal(err)
	}
	m, err := New(cfg, NewRandomSource(cfg, F32, 1), Options{Weights: WeightsResident})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkForward is `minitron bench forward` on the default config:
// batch 8 × 128 tokens, all logits.
func BenchmarkForward(b *testing.B) {
	m := benchModel(b)
	ids := make([][]int, 8)
	for i := range ids {
		ids[i] = make([]int, 128)
		for t := range ids[i] {
			ids[i][t] = (i*131 + t*17) % m.Cfg.VocabSize
		}
	}
	if _, err := m.Forward(ids, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Forward(ids, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(8*128*b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(ForwardFLOPs(m.Cfg, 8, 128)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func TestForwardFLOPs(t *testing.T) {
	cfg, _ := SyntheticConfig(Nemotron, 1, 4, 2, 1, 8, 10)
	// hd 2, qd 4, kvd 2: per token 2·[(4·8 + 4·4 + 4·8 + 8·4) + 4·10] = 2·152;
	// attention for T=3: 1·1·2·4·2·(1+2+3) = 96.
	if got, want := ForwardFLOPs(cfg, 1, 3), 3*2*152.0+96; got != want {
		t.Fatalf("ForwardFLOPs = %v, want %v", got, want)
	}
	cfg.SlidingWindow = 2
	if got, want := ForwardFLOPs(cfg, 1, 3), 3*2*152.0+2*4*2*(1+2+2); got != want {
		t.Fatalf("windowed ForwardFLOPs = %v, want %v", got, want)
	}
}

func TestBenchForwardRuns(t *testing.T) {
	cfg, _ := SyntheticConfig(Llama, 2, 32, 4, 2, 64, 50)
	m, err := New(cfg, NewRandomSource(cfg, F32, 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := BenchForward(m, 2, 8, 1, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.TokensPerS <= 0 || r.GFLOPs <= 0 || r.Best > r.Mean {
		t.Fatalf("implausible result %+v", r)
	}
}

// BenchmarkDecode times one cached decode step (batch 1) after a 128-token
// prompt on the bench config: the cost per generated token.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	prompt := make([]int, 128)
	for i := range prompt {
		prompt[i] = (i * 31) % m.Cfg.VocabSize
	}
	kc, err := m.NewKVCache(1, 128+b.N+1)
	if err != nil {
		b.Fatal(err)
	}
	fo := &ForwardOptions{Output: LastLogits, Cache: kc}
	if _, err := m.Forward([][]int{prompt}, fo); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Forward([][]int{{i % m.Cfg.VocabSize}}, fo); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
