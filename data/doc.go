// Package data turns text into training tokens: tokenizers (SentencePiece
// .model and Hugging Face tokenizer.json, plus a byte-level BPE trainer),
// corpus ingestion into Megatron indexed datasets (.bin/.idx), samplers with
// resumable positions, and the built-in corpora that ship with every Go
// installation.
package data
