// Package gpu is a device-resident training step for minitron's
// decoders on the CUDA backend (package cuda): parameters, gradients, AdamW
// moments and every activation stay on the GPU for the whole step; only
// token ids go up and per-row losses come back. It mirrors distill's
// Student/Trainer (the same layers, loss mix, gradient scaling, clipping and
// AdamW) so the two can be compared step for step, and it is what
// `bench train --device cuda` times and what distill.Run's Device "cuda"
// (`train`/`distill --device cuda`, distill/engine_cuda.go) steps with,
// every loss included (CE, forward/reverse KL, top-k KL with the top-k
// selected on the device, the intermediate-state loss with its projection).
//
// The same Model also runs inference (Infer, infer.go): a model built
// without train keeps one set of activation buffers whatever its depth,
// takes batches of up to Batch rows of up to Seq tokens (SetInputs), skips
// layers, exposes the activations to Hooks as device buffers, and returns
// per-token log-probabilities and arg-maxes (TokenLogProbs), decodes over a
// device KV cache (NewKVCache, InferCached: new tokens only, RoPE at
// absolute positions), and can keep
// its weight matrices only as bf16 (NewModelOpts, Options.WeightsBF16). It
// is what importance, eval and `bench forward` run on with --device cuda.
//
// Like package cuda it is only compiled with the minitron_cuda build tag (a
// GPU) or minitron_cudaemu (the CPU emulator, which runs its tests here:
// three steps match distill.Trainer's losses and gradient norms to 6
// digits). Attention goes through cuBLAS (Device.AttentionTC) unless
// Model.AttnTC is cleared.
package gpu
