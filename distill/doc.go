// Package distill is minitron's training core: it retrains pruned students
// the Minitron way — logit distillation from a frozen teacher — and trains
// or fine-tunes models with plain cross-entropy, on any device.
//
// The core owns what a training run means, once for every device: the
// losses (Losses: weights, validation, the terms a step computes and their
// mix, the intermediate-state loss's dynamic weight), the optimizer (Optim:
// AdamW's scalars, weight-decay exclusion, gradient clipping), the Schedule,
// the non-finite policy and StepMetrics (Trainer), evaluation, the run loop
// with its logging, validation and checkpoint cadence and SIGINT (Run), and
// the checkpoint format and resume.
//
// A device supplies an Engine: the student's forward and backward passes
// over its kernels, the AdamW update and the state it owns, moved one
// tensor at a time (ReadState/WriteState), so checkpoints stream from the
// device to the file and no host copy of the model is needed. The CPU
// engine is built in: a gorgonia expression graph (gorgonia is the
// autodiff engine: symbolic differentiation and a tape machine) whose nodes
// are coarse custom ops — embedding, fused q|k|v and gate|up linear layers,
// LayerNorm1P/RMSNorm, attention with RoPE, GQA and a causal or
// sliding-window mask, the MLP activation, the residual add and fused
// losses — each calling the kernels of package model/kernels, into buffers
// allocated once per graph; the teacher runs model.Model's forward pass.
// The CUDA engine is package gpu's, registered for device.CUDA when a
// binary built with the CUDA backend links it (RegisterEngine).
//
// Run is the library entry point (the CLI's distill and train commands,
// the architecture search and the reproduction call it); NewTrainer and
// Trainer.TrainStep are the step for callers that bring their own loop.
package distill
