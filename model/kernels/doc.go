// Package kernels holds the compute kernels shared by the inference forward
// pass (package model) and the training graph (package distill): matrix
// products, norms, RoPE, attention, activations and their backward passes.
//
// One concept, one home: a kernel that both inference and training need is
// written here once. Matrix products go to OpenBLAS through cgo by default;
// builds with CGO_ENABLED=0 or the purego tag fall back to gonum's pure-Go
// BLAS, which is correct but roughly ten times slower.
package kernels
