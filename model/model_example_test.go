package model_test

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
)

// Score a token sequence: one forward pass, then the NLL of each next token.
func ExampleModel_Forward() {
	m, err := model.Load("testdata/golden/llama-tiny", model.Options{})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	ids := []int{1, 5, 9, 33}
	logits, err := m.Forward([][]int{ids}, nil) // [T, V]
	if err != nil {
		panic(err)
	}
	_, mean, _ := model.SequenceNLL(logits, ids)
	fmt.Printf("%d logits, mean NLL %.3f\n", len(logits), mean)
	// Output: 1024 logits, mean NLL 5.700
}

// Collect the per-head attention output (the input of o_proj) of every
// layer, as head-importance scoring does.
func ExampleHooks() {
	m, err := model.Load("testdata/golden/nemotron-tiny", model.Options{})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	hd := m.Cfg.HeadDim
	norms := make([][]float64, m.Cfg.NumLayers) // Σ‖head output‖² per layer and head
	hooks := &model.Hooks{AttnHeads: func(layer, b, t int, x []float32) {
		if norms[layer] == nil {
			norms[layer] = make([]float64, m.Cfg.NumHeads)
		}
		width := m.Cfg.NumHeads * hd
		for r := 0; r < b*t; r++ {
			for h := 0; h < m.Cfg.NumHeads; h++ {
				for _, v := range x[r*width+h*hd : r*width+(h+1)*hd] {
					norms[layer][h] += float64(v) * float64(v)
				}
			}
		}
	}}
	if _, err := m.Forward([][]int{{2, 7, 11, 13}, {2, 8, 1, 3}}, &model.ForwardOptions{Hooks: hooks, Output: model.Hidden}); err != nil {
		panic(err)
	}
	fmt.Println(len(norms), "layers ×", len(norms[0]), "heads")
	// Output: 2 layers × 4 heads
}
