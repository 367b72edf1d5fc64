package model

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"time"
)

// SyntheticConfig builds a config for a random model of the given family and
// shape (head_dim = hidden/heads), with the family's defaults for the rest.
func SyntheticConfig(family Family, layers, hidden, heads, kvHeads, ffn, vocab int) (*Config, error) {
	m := map[string]any{
		"model_type": string(family), "hidden_size": hidden, "intermediate_size": ffn,
		"num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kvHeads,
		"vocab_size": vocab, "max_position_embeddings": 4096,
	}
	if heads > 0 && hidden%heads != 0 {
		return nil, fmt.Errorf("hidden %d is not a multiple of heads %d", hidden, heads)
	}
	if heads > 0 {
		m["head_dim"] = hidden / heads // explicit: qwen3's default would be 128
	}
	b, _ := json.Marshal(m)
	return ParseConfig(b)
}

// ForwardFLOPs counts the floating-point operations of one forward pass over
// B sequences of T tokens, counting a multiply-add as 2 and only matrix
// products:
//
//	2·B·T·[L·(H·(qd+2·kvd) + qd·H + m·H·F + F·H) + H·V]   projections, MLP, head
//	+ L·B·nH·4·hd·T(T+1)/2                                  QKᵀ and PV over the causal half
//
// with m = 2 for gated (llama/mistral) MLPs and 1 for nemotron, qd = nH·hd,
// kvd = nKV·hd. With a sliding window w < T the attention term counts only
// the visible keys. Norms, RoPE, softmax and activations are not counted.
func ForwardFLOPs(c *Config, B, T int) float64 {
	H, F, V, L := float64(c.HiddenSize), float64(c.IntermediateSize), float64(c.VocabSize), float64(c.NumLayers)
	qd, kvd := float64(c.QDim()), float64(c.KVDim())
	mlp := 1.0
	if c.GatedMLP() {
		mlp = 2
	}
	tok := float64(B * T)
	proj := 2 * tok * (L*(H*(qd+2*kvd)+qd*H+mlp*H*F+F*H) + H*V)
	var visible float64 // Σ over query positions of visible keys
	for i := 0; i < T; i++ {
		n := i + 1
		if c.SlidingWindow > 0 && n > c.SlidingWindow {
			n = c.SlidingWindow
		}
		visible += float64(n)
	}
	attn := L * float64(B) * float64(c.NumHeads) * 4 * float64(c.HeadDim) * visible
	return proj + attn
}

// BenchResult is the outcome of BenchForward.
type BenchResult struct {
	Batch, Seq  int
	Iters       int
	Best, Mean  time.Duration
	TokensPerS  float64 // at the best time
	GFLOPs      float64 // GFLOP/s at the best time (ForwardFLOPs)
	FLOPsPerRun float64
}

// BenchForward times full forward passes (all logits) over random tokens:
// warmup untimed runs, then iters timed ones; throughput uses the best time,
// like the PyTorch baseline (scripts/torch_bench.py).
func BenchForward(m *Model, B, T, warmup, iters int, seed int64) (*BenchResult, error) {
	if B <= 0 || T <= 0 || iters <= 0 {
		return nil, fmt.Errorf("bench: batch, seq and iters must be positive")
	}
	rng := rand.New(rand.NewSource(seed))
	ids := make([][]int, B)
	for b := range ids {
		ids[b] = make([]int, T)
		for t := range ids[b] {
			ids[b][t] = rng.Intn(m.Cfg.VocabSize)
		}
	}
	for i := 0; i < warmup; i++ {
		if _, err := m.Forward(ids, nil); err != nil {
			return nil, err
		}
	}
	r := &BenchResult{Batch: B, Seq: T, Iters: iters, FLOPsPerRun: ForwardFLOPs(m.Cfg, B, T)}
	var total time.Duration
	for i := 0; i < iters; i++ {
		t0 := time.Now()
		if _, err := m.Forward(ids, nil); err != nil {
			return nil, err
		}
		d := time.Since(t0)
		total += d
		if r.Best == 0 || d < r.Best {
			r.Best = d
		}
	}
	r.Mean = total / time.Duration(iters)
	r.TokensPerS = float64(B*T) / r.Best.Seconds()
	r.GFLOPs = r.FLOPsPerRun / r.Best.Seconds() / 1e9
	return r, nil
}
