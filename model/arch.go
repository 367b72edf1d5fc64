package model

import (
	"fmt"
	"strings"

	"github.com/minitron-dev/minitron/model/kernels"
)

// Arch is what a Config and its weights imply for the computation: the
// activation, the kind of norm, whether the norms carry biases, RoPE's
// frequencies and the tensor list. It is derived once, here, for the
// forward pass and both training engines, so an unknown value is an error
// everywhere and no path picks a default of its own.
type Arch struct {
	Cfg      *Config
	Act      kernels.Activation
	RMSNorm  bool      // RMSNorm (llama, mistral, qwen2, qwen3) rather than LayerNorm1P (nemotron)
	NormBias bool      // the LayerNorm1P biases are in the weights
	InvFreq  []float32 // RoPE inverse frequencies of the rotating dims (nil when none rotate)
	// Tensors are the weights in their canonical order (ExpectedTensors,
	// then the norm biases when present): the order of every parameter
	// arena and of the optimizer state.
	Tensors []TensorInfo
}

// NewArch derives cfg's architecture; src (may be nil) says whether the
// optional norm biases are present.
func NewArch(cfg *Config, src TensorSource) (*Arch, error) {
	act, err := kernels.ParseActivation(cfg.HiddenAct)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	a := &Arch{Cfg: cfg, Act: act, RMSNorm: cfg.Family != Nemotron, Tensors: ExpectedTensors(cfg)}
	if opt := OptionalTensors(cfg); len(opt) > 0 && src != nil {
		if _, ok := src.Info(opt[len(opt)-1].Name); ok {
			a.NormBias = true
			a.Tensors = append(a.Tensors, opt...)
		}
	}
	if rot := cfg.RotaryDim(); rot > 0 {
		var rs *kernels.RopeScaling
		if s := cfg.RopeScaling; s != nil {
			rs = &kernels.RopeScaling{Type: s.Type, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
				HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositionEmbeddings}
		}
		if a.InvFreq, err = kernels.RopeInvFreq(rot, cfg.RopeTheta, rs); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return a, nil
}

// RopeTables are the cos/sin tables [positions, rot/2] (nil, nil when no
// dim rotates). Row p is position p whatever the length asked for.
func (a *Arch) RopeTables(positions int) (cos, sin []float32) {
	if a.InvFreq == nil {
		return nil, nil
	}
	return kernels.RopeTables(a.InvFreq, positions)
}

// AttnDims is attention's geometry for batch sequences of seq tokens over a
// fused q|k|v buffer (rows of QDim+2·KVDim) into a [rows, QDim] output.
func (a *Arch) AttnDims(batch, seq int) kernels.AttnDims {
	c := a.Cfg
	W := c.QDim() + 2*c.KVDim()
	return kernels.AttnDims{Batch: batch, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim,
		Tq: seq, Tk: seq, Window: c.SlidingWindow, LdQ: W, LdK: W, LdV: W, LdO: c.QDim()}
}

// HeadTensor names the weight the logits are computed with: lm_head, or
// the embedding when they are tied.
func (a *Arch) HeadTensor() string {
	if a.Cfg.TieWordEmbeddings {
		return EmbedTensor
	}
	return "lm_head.weight"
}

// EmbedTensor is the token embedding table's name.
const EmbedTensor = "model.embed_tokens.weight"

// NoDecay reports a tensor that AdamW leaves undecayed unless told to decay
// everything: vectors (norms, biases) and the embedding.
func NoDecay(t TensorInfo) bool {
	return len(t.Shape) == 1 || strings.Contains(t.Name, "embed_tokens")
}
