//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// Hooks observe device buffers during Infer, like model.Hooks on the CPU.
// Each buffer is contiguous row-major [B·T, width] for the active batch (B,
// T from SetInputs; row b·T+t) and valid only during the call: read it (a
// kernel queued on the device, a download), never write it. A non-nil error
// aborts Infer. Skipped layers call no hooks (as model.Model.Forward).
type Hooks struct {
	// AttnNorm and MLPNorm are input_layernorm's and
	// post_attention_layernorm's outputs, width H.
	AttnNorm, MLPNorm func(l int, x cuda.Buf, B, T int) error
	// AttnHeads is o_proj's input, width NumHeads·HeadDim (head h is
	// columns h·HeadDim…).
	AttnHeads func(l int, x cuda.Buf, B, T int) error
	// MLPPre is the MLP intermediate before the activation, width F:
	// gate_proj's output (gated MLPs) or up_proj's; MLPPost is down_proj's
	// input.
	MLPPre, MLPPost func(l int, x cuda.Buf, B, T int) error
	// LayerInput and LayerOutput are the residual stream entering and
	// leaving layer l, width H. The LayerInput buffer stays valid until
	// LayerOutput of the same layer returns.
	LayerInput, LayerOutput func(l int, x cuda.Buf, B, T int) error
}

// InferOptions are Infer's optional parts; nil means all layers, no hooks,
// logits.
type InferOptions struct {
	Skip     []int // layers run as identity (model.ForwardOptions.SkipLayers)
	Hooks    *Hooks
	NoLogits bool // stop after the last layer (no final norm, no lm_head)
}

// SetInputs uploads B' ≤ Batch rows of equal length T ≤ Seq (inputs) and,
// when targets is non-nil, targets of the same shape (-1 = none, for
// padding); without targets every target is -1. Rows are laid out [B'·T]
// contiguously and become the active shape for Infer (SetBatch sets the
// full Batch×Seq shape back).
func (m *Model) SetInputs(ids, targets [][]int32) error {
	B := len(ids)
	if B == 0 || B > m.Batch {
		return fmt.Errorf("gpu: %d input sequences, want 1 to %d (the model's batch)", B, m.Batch)
	}
	T := len(ids[0])
	if T == 0 || T > m.Seq {
		return fmt.Errorf("gpu: input sequence of %d tokens, want 1 to %d (the model's sequence length)", T, m.Seq)
	}
	if targets != nil && len(targets) != B {
		return fmt.Errorf("gpu: %d target rows for %d input sequences", len(targets), B)
	}
	V := m.Cfg.VocabSize
	for b, row := range ids {
		if len(row) != T {
			return fmt.Errorf("gpu: input sequence %d has %d tokens, sequence 0 has %d (a batch needs equal lengths)", b, len(row), T)
		}
		var tr []int32
		if targets != nil {
			if tr = targets[b]; len(tr) != T {
				return fmt.Errorf("gpu: target row %d has %d values, want %d", b, len(tr), T)
			}
		}
		for t, id := range row {
			if id < 0 || int(id) >= V {
				return fmt.Errorf("gpu: input sequence %d, position %d: token id %d outside the vocabulary [0,%d)", b, t, id, V)
			}
			tg := int32(-1)
			if tr != nil {
				if tg = tr[t]; tg < -1 || int(tg) >= V {
					return fmt.Errorf("gpu: target row %d, position %d: %d is neither -1 nor in the vocabulary [0,%d)", b, t, tg, V)
				}
			}
			m.hostIDs[b*T+t], m.hostTargets[b*T+t] = id, tg
		}
	}
	rows := B * T
	return firstErr(m.setShape(B, T), m.d.CopyFromInt32(m.ids, m.hostIDs[:rows]), m.d.CopyFromInt32(m.targets, m.hostTargets[:rows]))
}

// Active is the shape of the batch SetInputs (or SetBatch) set.
func (m *Model) Active() (B, T int) { return m.activeB, m.activeT }

// Infer runs the forward pass on the SetInputs batch; the logits of its
// B'·T rows are the first B'·T·V values of Logits(). It keeps no
// activations for a backward pass (in a training model it reuses layer
// 0's buffers, so run Forward again before a backward).
func (m *Model) Infer(o *InferOptions) error { return m.forward(o, false) }

// TokenLogProbs returns, per active row, log p(target) under the last
// Infer's logits (0 where the target is -1) and the row's argmax token id
// (its first maximum). Both are computed on the device
// (cuda.Device.TokenLogProbs): only 8 bytes a row come back.
func (m *Model) TokenLogProbs() (logp []float32, argmax []int32, err error) {
	d := m.d
	if m.logp.IsNil() {
		n := m.Batch * m.Seq
		if m.logp, err = m.alloc(n); err != nil {
			return nil, nil, err
		}
		if m.argmax, err = m.alloc(n); err != nil {
			return nil, nil, err
		}
	}
	rows := m.rows()
	if err := d.TokenLogProbs(m.logp, m.argmax, m.logits, m.targets, rows, m.Cfg.VocabSize); err != nil {
		return nil, nil, err
	}
	logp, argmax = make([]float32, rows), make([]int32, rows)
	if err := firstErr(d.Download(logp, m.logp), d.DownloadInt32(argmax, m.argmax)); err != nil {
		return nil, nil, err
	}
	return logp, argmax, nil
}
