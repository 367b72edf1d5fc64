// Package importance scores the parts of a decoder LM the Minitron way:
// from activations of forward passes over calibration samples it computes
// per-layer attention-head, KV-group and MLP-neuron scores, network-wide
// embedding-channel scores, and layer importance (Block Importance and the
// loss when a layer or a contiguous block is dropped). Scores are written
// to a JSON file that records which model and data produced them, so
// prune can reuse them without another pass.
package importance
