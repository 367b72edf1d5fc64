package importance

import (
	"math"
	"math/rand/v2"

	"github.com/minitron-dev/minitron/model"
)

// Random returns scores drawn uniformly at random (seeded), including
// random Block Importance, so pruning by them is the papers' "random
// pruning" baseline at any shape.
func Random(cfg *model.Config, seed uint64) *Scores {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	vec := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = r.Float64()
		}
		return v
	}
	s := &Scores{Format: FormatV1, Shape: ShapeOf(cfg), Method: "random", Channels: vec(cfg.HiddenSize)}
	for l := 0; l < cfg.NumLayers; l++ {
		h := vec(cfg.NumHeads)
		s.Layers = append(s.Layers, LayerScores{Heads: h, Groups: GroupScores(h, cfg.NumKVHeads), Neurons: vec(cfg.IntermediateSize)})
	}
	s.Depth = &LayerImportance{BI: vec(cfg.NumLayers)}
	return s
}

// Magnitude scores by weight norms, the classic data-free baseline: a
// head's score is the L2 norm of its q_proj rows and o_proj columns, a
// neuron's the norm of its up/gate rows and down_proj column, a channel's
// the norm of every weight that reads or writes it (embedding and lm_head
// columns, q/k/v/up/gate columns, o/down rows), and a layer's "BI" the norm
// of o_proj and down_proj (what the layer writes into the residual stream).
// Norm weights are not counted.
func Magnitude(cfg *model.Config, src model.TensorSource) (*Scores, error) {
	H, F, hd := cfg.HiddenSize, cfg.IntermediateSize, cfg.HeadDim
	ch := make([]float64, H)
	read := func(name string) ([]float32, error) {
		info, ok := src.Info(name)
		if !ok {
			return nil, nil
		}
		d := make([]float32, info.NumElements())
		return d, src.ReadF32(name, d)
	}
	// colSq adds squared column norms of w [rows, cols] into dst; rowSq rows.
	colSq := func(dst []float64, w []float32, cols int) {
		for i, v := range w {
			dst[i%cols] += float64(v) * float64(v)
		}
	}
	rowSq := func(dst []float64, w []float32, cols int) {
		for i, v := range w {
			dst[i/cols] += float64(v) * float64(v)
		}
	}
	s := &Scores{Format: FormatV1, Shape: ShapeOf(cfg), Method: "magnitude", Depth: &LayerImportance{BI: make([]float64, cfg.NumLayers)}}
	for _, n := range []string{"model.embed_tokens.weight", "lm_head.weight"} {
		w, err := read(n)
		if err != nil {
			return nil, err
		}
		colSq(ch, w, H)
	}
	for l := 0; l < cfg.NumLayers; l++ {
		p := model.LayerPrefix(l)
		heads := make([]float64, cfg.NumHeads)
		neurons := make([]float64, F)
		var written float64
		for _, n := range []string{"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "mlp.up_proj.weight", "mlp.gate_proj.weight"} {
			w, err := read(p + n)
			if err != nil {
				return nil, err
			}
			colSq(ch, w, H)
			switch n {
			case "self_attn.q_proj.weight":
				rows := make([]float64, cfg.QDim())
				rowSq(rows, w, H)
				for i, v := range rows {
					heads[i/hd] += v
				}
			case "mlp.up_proj.weight", "mlp.gate_proj.weight":
				rowSq(neurons, w, H)
			}
		}
		o, err := read(p + "self_attn.o_proj.weight")
		if err != nil {
			return nil, err
		}
		rowSq(ch, o, cfg.QDim())
		oc := make([]float64, cfg.QDim())
		colSq(oc, o, cfg.QDim())
		for i, v := range oc {
			heads[i/hd] += v
			written += v
		}
		down, err := read(p + "mlp.down_proj.weight")
		if err != nil {
			return nil, err
		}
		rowSq(ch, down, F)
		dc := make([]float64, F)
		colSq(dc, down, F)
		for i, v := range dc {
			neurons[i] += v
			written += v
		}
		sqrtAll(heads)
		sqrtAll(neurons)
		s.Layers = append(s.Layers, LayerScores{Heads: heads, Groups: GroupScores(heads, cfg.NumKVHeads), Neurons: neurons})
		s.Depth.BI[l] = math.Sqrt(written)
	}
	sqrtAll(ch)
	s.Channels = ch
	return s, nil
}

func sqrtAll(v []float64) {
	for i := range v {
		v[i] = math.Sqrt(v[i])
	}
}
