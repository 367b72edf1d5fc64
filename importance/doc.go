// Package importance scores the parts of a decoder LM the Minitron way:
// from activations of forward passes over calibration samples it computes
// per-layer attention-head, KV-group and MLP-neuron scores, network-wide
// embedding-channel scores, and layer importance (Block Importance and the
// loss when a layer or a contiguous block is dropped). Scores are written
// to a JSON file that records which model and data produced them, so
// prune can reuse them without another pass.
//
// Run is the entry point (what `minitron importance` calls): a checkpoint
// directory and a dataset prefix in, a scores file out, with its
// Provenance (checkpoint directory, device, minitron version). Compute is
// the layer below it, for callers that already hold a model and samples.
// Both report progress through a callback and run on the CPU or, with
// Device device.CUDA in a CUDA build, on GPU 0.
package importance
