// Package model loads Hugging Face decoder checkpoints (nemotron, llama,
// mistral), runs their forward pass with read-only activation hooks, counts
// parameters and generates text with a KV cache.
//
// Weights stay memory-mapped in their stored dtype (f32, bf16, f16) and are
// converted to f32 one layer at a time, so checkpoints larger than RAM run.
package model
