// Package nccl is the communicator of device buffers in the CUDA build
// (-tags minitron_cuda): NVIDIA's NCCL, loaded at run time with dlopen like
// cuBLAS, so the binary runs with whichever libnccl.so.2 the GPU machine
// has. MINITRON_NCCL names the library file to load; otherwise
// libnccl.so.2, then libnccl.so, are looked up on the loader's path
// (LD_LIBRARY_PATH, ld.so.cache; a PyTorch wheel ships one under
// site-packages/nvidia/nccl/lib).
//
// Its communicator wraps the job's host communicator (MPI): rank 0's NCCL
// unique id is broadcast over it, host buffers and scalars still go
// through it, and device buffers (comm.Device) go through NCCL. Linking
// the package registers it (comm.RegisterDevice); the gpu package does so
// in the CUDA build.
package nccl
