// Package distill retrains pruned students the Minitron way — logit
// distillation from a frozen teacher — and trains or fine-tunes models with
// plain cross-entropy, on CPU.
//
// The student's training graph is a gorgonia expression graph (gorgonia is
// the autodiff engine: symbolic differentiation and a tape machine) whose
// nodes are coarse custom ops — embedding, fused q|k|v and gate|up linear
// layers, LayerNorm1P/RMSNorm, attention with RoPE, GQA and a causal or
// sliding-window mask, the MLP activation, the residual add and fused
// CE/KL losses — each calling the same kernels (package model/kernels) as the
// inference forward pass, into buffers allocated once per graph. The
// optimizer (AdamW, fused and in place), gradient clipping and accumulation
// are this package's, not gorgonia's solvers. The teacher runs model.Model's
// forward pass, outside any graph.
//
// Run is the library entry point (the CLI's distill and train commands and
// the architecture search call it); Student, Trainer, AdamW and Schedule are
// its parts.
package distill
