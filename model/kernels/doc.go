// Package kernels holds the compute kernels shared by the inference forward
// pass (package model) and the training graph (package distill): matrix
// products, norms, RoPE, attention, activations and their backward passes.
//
// One concept, one home: a kernel that both inference and training need is
// written here once. Matrix products go to OpenBLAS through cgo by default;
// builds with CGO_ENABLED=0 or the purego tag fall back to gonum's pure-Go
// BLAS, which is correct but roughly ten times slower.
package kernels

// Conventions (forward kernels; the backward kernels in *_grad.go follow them):
//
//   - Plain functions over []float32 with explicit dimensions; no hidden
//     state beyond the worker count (SetWorkers). Outputs come first
//     (out, then inputs), like copy. Matrices are row-major; an activation
//     matrix is [rows, dim] with rows = batch·seq (sequence-major).
//   - Weights use the Hugging Face [out,in] layout: y = x·Wᵀ (MatMulT,
//     ParMatMulT). ParSgemmEpi/ParMatMulTEpi run an epilogue on each block
//     of the product while it is in cache (the forward pass fuses the MLP
//     activation this way).
//   - Threads: Go owns the cores. OpenBLAS is set to one thread at init and
//     kernels split work over Workers() goroutines themselves (ParallelFor,
//     ParSgemm; attention splits over sequence×head×query block). Do not
//     raise BLASThreads while kernels run, or the two pools oversubscribe.
//   - Norms: LayerNorm1P (Nemotron, weight stored as w with scale w+1, bias
//     optional) and RMSNorm; the *Stats variants also return the per-row
//     mean/rstd the backward pass needs. Statistics accumulate in float64.
//   - RoPE: RopeInvFreq (with linear/llama3 scaling) → RopeTables (cos, sin
//     [positions, rot/2]) → ApplyRope in place on the first rot dims of each
//     head, rotate-half style. The inverse rotation is ApplyRope with the sin
//     table negated.
//   - Attention: Attention(out, q, k, v, AttnDims, probs) is causal with GQA
//     (query head h reads KV head h/(Heads/KVHeads)), scale 1/√HeadDim,
//     optional sliding window, and optional strided (fused QKV) and KV-cache
//     layouts. probs, when non-nil, receives the softmax weights
//     [Batch, Heads, Tq, Tk] for the backward pass.
//   - Activations: Activation.Apply (elementwise) and ApplyGated
//     (act(gate)·up, SwiGLU for SiLU). Exp32 is the fast float32 exp used by
//     softmax and SiLU.
