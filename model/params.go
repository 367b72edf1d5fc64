package model

import (
	"fmt"
	"strings"
)

// ParamCounts splits a model's parameters the way the Minitron papers do.
type ParamCounts struct {
	Total int64
	// Embedding is embed_tokens plus lm_head when it is not tied.
	Embedding int64
	// NonEmbedding is everything else: attention, MLP, norms and biases.
	NonEmbedding int64
}

// ParamCounts counts the parameters cfg implies: every tensor of
// ExpectedTensors plus, for nemotron, the LayerNorm1P biases (HF's
// NemotronForCausalLM always has them). An untied lm_head counts as
// embedding. This is the counting behind the published sizes: the
// Minitron-4B shape (32 layers, H 3072, 24 heads, 8 KV heads, hd 128, FFN
// 9216, vocab 256000, untied) gives 4.19B total of which 1.57B embedding,
// Minitron-8B (H 4096, 48 heads, FFN 16384) gives 8.27B, and Nemotron-4 15B
// gives 15.63B = 3.15B embedding + 12.48B non-embedding (its report: 3.2B +
// 12.5B). Norm weights and biases are included; they change the totals by
// well under 0.01%.
func (c *Config) ParamCounts() ParamCounts {
	// One layer is counted and multiplied, so absurd layer counts cost
	// nothing to evaluate.
	one := *c
	one.NumLayers = 1
	var layer, pc ParamCounts
	for _, t := range append(ExpectedTensors(&one), OptionalTensors(&one)...) {
		n := int64(1)
		for _, d := range t.Shape {
			n *= int64(d)
		}
		switch {
		case isEmbeddingTensor(t.Name):
			pc.Embedding += n
		case strings.HasPrefix(t.Name, "model.layers."):
			layer.Total += n
		default:
			pc.NonEmbedding += n
		}
	}
	pc.NonEmbedding += int64(c.NumLayers) * layer.Total
	pc.Total = pc.Embedding + pc.NonEmbedding
	return pc
}

// CountParams counts the parameters actually stored in src, classifying
// embed_tokens and lm_head as embedding. Known-harmless buffers (rotary
// inv_freq) are not parameters and are skipped.
func CountParams(src TensorSource) ParamCounts {
	var pc ParamCounts
	for _, name := range src.Names() {
		if harmlessExtra.MatchString(name) {
			continue
		}
		info, ok := src.Info(name)
		if !ok {
			continue
		}
		n := int64(1)
		for _, d := range info.Shape {
			n *= int64(d)
		}
		pc.Total += n
		if isEmbeddingTensor(name) {
			pc.Embedding += n
		}
	}
	pc.NonEmbedding = pc.Total - pc.Embedding
	return pc
}

func isEmbeddingTensor(name string) bool {
	return name == "lm_head.weight" || strings.HasSuffix(name, "embed_tokens.weight")
}

// FormatParams prints a parameter count as the papers do ("8.27B", "46.23M").
func FormatParams(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
