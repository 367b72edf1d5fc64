// Package gpu is minitron's device runtime on the CUDA backend (package
// model/kernels/cuda, which holds the kernels only): a decoder Model whose
// weights and activations live on the GPU, for inference and for training.
//
// Inference (Infer, infer.go): a model built without train keeps one set
// of activation buffers whatever its depth, takes batches of up to Batch
// rows of up to Seq tokens (SetInputs), skips layers, exposes the
// activations to Hooks as device buffers, returns per-token
// log-probabilities and arg-maxes (TokenLogProbs), decodes over a device
// KV cache (NewKVCache, InferCached: new tokens only, RoPE at absolute
// positions), and can keep its weight matrices only as bf16 (NewModelOpts,
// Options.WeightsBF16). Importance scoring, eval and `bench forward` run
// on it with device cuda.
//
// Training (Engine): the CUDA engine of the training core (package
// distill), registered for device.CUDA when this package is linked.
// Parameters, gradients, AdamW moments and every activation stay on the
// device; token ids go up, per-row losses come back, and the state moves
// one tensor at a time through ReadState/WriteState (checkpoints, resume).
// The engine supplies the kernels of a step — forward, the loss terms,
// the intermediate-state loss, backward, the AdamW update — while the core
// decides the loss mix, clipping, the non-finite policy and the schedule,
// as for the CPU engine. In bf16 (Options.BF16 or WeightsBF16) each layer
// keeps what its backward pass reads in bf16 beside the f32 residual
// stream, the forward pass running in one shared f32 working set; with
// Options.Recompute only the layers' inputs are kept.
//
// Like package cuda it is compiled only with the minitron_cuda build tag (a
// GPU) or minitron_cudaemu (the CPU emulator, which runs its tests here:
// three steps through the core's Trainer match the CPU engine's losses and
// gradient norms to 1e-4 relative). Attention goes through cuBLAS
// (Device.AttentionTC) unless Model.AttnTC is cleared.
package gpu
