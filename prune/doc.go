// Package prune turns a teacher checkpoint and importance scores into a
// smaller student: it resolves target architectures (explicit widths, the
// papers' presets, or a parameter budget), keeps the top-scored embedding
// channels, KV groups, query heads, MLP neurons and layers with the same
// widths in every layer, slices the weights lazily per axis, writes a
// complete Hugging Face checkpoint with a prune report, and searches
// candidate architectures by brief distillation.
package prune
