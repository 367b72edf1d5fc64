// Package cuda is the CUDA backend of minitron's compute kernels: the same
// operations as package kernels (embedding, norms, RoPE, attention,
// activations, softmax and the CE/KL losses, the intermediate-state cosine
// loss, AdamW, reductions, top-k, token log-probabilities, the importance
// statistics) on float32 buffers that stay on the GPU, with matrix products
// through cuBLAS (TF32 tensor-op math for f32, bf16 through cublasGemmEx).
// It holds kernels and the device handle only; the runtime built on them
// (models on the device, inference, the KV cache, the training engine) is
// package gpu.
//
// The implementation is only compiled with the minitron_cuda build tag
// (make build-cuda; not gorgonia's cuda tag, which needs cuDNN): it links
// gorgonia.org/cu and libcuda.so.1 (the driver) and loads cuBLAS with
// dlopen at first use ($MINITRON_CUBLAS, else libcublas.so.11/.12/.13), so
// one binary runs against whichever cuBLAS a machine has. gorgonia.org/cu's
// package init exits the process when no GPU is present, so the default
// binary must never import it; without the tag the package only has
// Available (false) and ErrNotBuilt, so callers can say how to get a CUDA
// binary.
//
// Kernel sources are csrc/*.cu; `make ptx` compiles them with nvcc to
// ptx/*.ptx (PTX for compute_80, which newer drivers JIT-compile for their
// GPU), which are committed and embedded, loaded with cuModuleLoadData and
// launched through gorgonia.org/cu.
//
// The minitron_cudaemu build tag swaps the GPU for a CPU emulator: the same
// csrc/*.cu compiled as C++ against emu.h (threads as fibers, barriers and
// warp shuffles emulated), device memory on the C heap, a reference GEMM
// for cuBLAS (TF32 rounding emulated). It needs no CUDA headers, only g++,
// and runs every test of this package and of gpu on any machine:
//
//	go test -tags minitron_cudaemu ./model/kernels/cuda/... ./gpu
//
// It checks the kernels' logic, indexing and synchronisation, the launch
// argument packing and the Go wrappers; not the PTX, the driver, cuBLAS
// itself or speed.
//
// Threading: a CUDA context is current per OS thread, and goroutines move
// between threads, so every Device method locks its goroutine to its thread
// and makes the device's (primary) context current for the duration of the
// call. A Device is not safe for concurrent use by several goroutines.
package cuda
