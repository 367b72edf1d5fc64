package cuda

import "math/bits"

// LargeClass is the pool's step above which blocks are multiples of it.
const LargeClass = 64 << 20

// SizeClass is the bytes the device memory pool (Pool) takes for a request
// of the given bytes: at least 256 (the alignment cuMemAlloc gives anyway),
// powers of two up to LargeClass, multiples of LargeClass beyond. It is
// built without the CUDA tags too, so a memory plan (distill.NewPlan) can
// round each of its buffers the way the pool will.
func SizeClass(bytes int64) int64 {
	if bytes <= 256 {
		return 256
	}
	if bytes <= LargeClass {
		return 1 << (64 - bits.LeadingZeros64(uint64(bytes-1)))
	}
	return (bytes + LargeClass - 1) / LargeClass * LargeClass
}
