// Package model loads Hugging Face decoder checkpoints (nemotron, llama,
// mistral, qwen2, qwen3), runs their forward pass with read-only activation hooks, counts
// parameters and generates text with a KV cache.
//
// It is also where an architecture is defined once for every engine: Arch
// derives the facts of a config (activation, norm kind and bias, RoPE
// tables, tensor order, attention geometry, what can be trained), and
// Layer and Decoder are the decoder's step sequence over a Backend — the
// CPU forward pass here, the CPU training graph (package distill) and the
// device runtime (package gpu) each supply the steps over their own values.
//
// Weights stay memory-mapped in their stored dtype (f32, bf16, f16) and are
// converted to f32 one layer at a time, so checkpoints larger than RAM run.
package model
