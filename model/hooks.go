package model

// Hook observes one activation during a forward pass. layer is the decoder
// layer (Config.NumLayers for the final norm); batch and seq give the shape
// (B, T) of the pass; x is a read-only [B·T, dim] row-major view (row b·T+t)
// that is valid only during the call — copy what you keep, never write.
// Hooks run on the forward pass's goroutine, one at a time.
type Hook func(layer, batch, seq int, x []float32)

// Hooks are the read-only observation points of a forward pass, the ones
// activation-based importance needs. A nil field costs nothing.
type Hooks struct {
	// LayerInput is the residual stream entering the layer [rows, H].
	LayerInput Hook
	// AttnNorm is input_layernorm's output [rows, H].
	AttnNorm Hook
	// AttnHeads is the per-head attention output, the input of o_proj
	// [rows, nH·hd]; head h is columns h·hd … (h+1)·hd−1.
	AttnHeads Hook
	// MLPNorm is post_attention_layernorm's output [rows, H].
	MLPNorm Hook
	// MLPPre is the MLP intermediate before the activation [rows, F]:
	// up_proj(x) for nemotron, gate_proj(x) for the SwiGLU families (the input of
	// the nonlinearity in both cases; biases included).
	MLPPre Hook
	// MLPPost is the input of down_proj [rows, F]: relu(up(x))² for
	// nemotron, silu(gate(x))·up(x) for the SwiGLU families.
	MLPPost Hook
	// LayerOutput is the residual stream leaving the layer [rows, H].
	LayerOutput Hook
	// FinalNorm is model.norm's output [rows, H] with layer = NumLayers (not
	// called for Output LastLogits).
	FinalNorm Hook
}
