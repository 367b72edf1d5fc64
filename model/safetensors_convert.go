package model

import (
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// The converters below are the hot path when streaming a large checkpoint
// layer by layer, so on little-endian hosts they reinterpret the byte slices
// as uint16/uint32 words (when suitably aligned, which mmap'd safetensors data
// with an 8-byte padded header always is) instead of assembling bytes.

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func aligned(b []byte, n uintptr) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%n == 0
}

// words16 views b as little-endian uint16s, or returns nil when it cannot.
func words16(b []byte) []uint16 {
	if !littleEndian || len(b) < 2 || !aligned(b, 2) {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

func f32bits(f []float32) []uint32 {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(f))), len(f))
}

// BF16ToF32 widens len(dst) little-endian bf16 values from src (exact).
func BF16ToF32(src []byte, dst []float32) {
	n := len(dst)
	src = src[:2*n]
	d := f32bits(dst)
	if w := words16(src); w != nil {
		w = w[:n]
		d = d[:n]
		i := 0
		for ; i+4 <= n; i += 4 {
			d[i] = uint32(w[i]) << 16
			d[i+1] = uint32(w[i+1]) << 16
			d[i+2] = uint32(w[i+2]) << 16
			d[i+3] = uint32(w[i+3]) << 16
		}
		for ; i < n; i++ {
			d[i] = uint32(w[i]) << 16
		}
		return
	}
	for i := range d {
		d[i] = uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16
	}
}

// F32ToF32 copies len(dst) little-endian f32 values from src.
func F32ToF32(src []byte, dst []float32) {
	n := len(dst)
	src = src[:4*n]
	if littleEndian && n > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*n), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

var (
	f16TableOnce sync.Once
	f16Table     []uint32 // f16 bits -> f32 bits, all 65536 values
)

func f16ToF32Bits(h uint16) uint32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf / NaN (payload kept)
		return sign | 0x7f800000 | mant<<13
	case exp == 0:
		if mant == 0 {
			return sign
		}
		// Subnormal m·2^-24: normalise into an f32 exponent.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return sign | e<<23 | (mant&0x3ff)<<13
	default:
		return sign | (exp+127-15)<<23 | mant<<13
	}
}

// F16ToF32 widens len(dst) little-endian IEEE half values from src (exact,
// through a 256 KB lookup table).
func F16ToF32(src []byte, dst []float32) {
	f16TableOnce.Do(func() {
		f16Table = make([]uint32, 1<<16)
		for i := range f16Table {
			f16Table[i] = f16ToF32Bits(uint16(i))
		}
	})
	t := (*[1 << 16]uint32)(f16Table)
	n := len(dst)
	src = src[:2*n]
	d := f32bits(dst)
	if w := words16(src); w != nil {
		w = w[:n]
		d = d[:n]
		for i, v := range w {
			d[i] = t[v]
		}
		return
	}
	for i := range d {
		d[i] = t[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

// BF16FromF32 rounds f to bfloat16 bits, nearest-even; NaN stays NaN.
func BF16FromF32(f float32) uint16 {
	u := math.Float32bits(f)
	return bf16FromBits(u)
}

func bf16FromBits(u uint32) uint16 {
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40 // quiet NaN, never rounded into inf
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// F16FromF32 rounds f to IEEE half bits, nearest-even, overflowing to ±inf
// and underflowing through subnormals to ±0.
func F16FromF32(f float32) uint16 { return f16FromBits(math.Float32bits(f)) }

func f16FromBits(u uint32) uint16 {
	sign := uint16(u>>16) & 0x8000
	a := u & 0x7fffffff
	switch {
	case a > 0x7f800000: // NaN: keep the top payload bits, force quiet
		return sign | 0x7e00 | uint16(a>>13)&0x3ff
	case a >= 0x477ff000: // >= 65520 rounds past 65504: inf
		return sign | 0x7c00
	case a >= 0x38800000: // normal half (>= 2^-14): rebias and round 13 bits
		a -= 112 << 23
		return sign | uint16((a+0xfff+(a>>13)&1)>>13)
	case a <= 0x33000000: // <= 2^-25 (half the smallest subnormal): ties to 0
		return sign
	}
	// Subnormal half: value = m·2^(e-150) = r·2^-24, r = m >> (126-e).
	e := a >> 23
	m := a&0x7fffff | 0x800000
	shift := 126 - e
	r := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// F32ToBF16 narrows src into little-endian bf16 dst (2·len(src) bytes).
func F32ToBF16(src []float32, dst []byte) {
	n := len(src)
	dst = dst[:2*n]
	s := f32bits(src)
	if w := words16(dst); w != nil {
		w = w[:n]
		for i, u := range s {
			w[i] = bf16FromBits(u)
		}
		return
	}
	for i, u := range s {
		binary.LittleEndian.PutUint16(dst[2*i:], bf16FromBits(u))
	}
}

// F32ToF16 narrows src into little-endian half dst (2·len(src) bytes).
func F32ToF16(src []float32, dst []byte) {
	n := len(src)
	dst = dst[:2*n]
	s := f32bits(src)
	if w := words16(dst); w != nil {
		w = w[:n]
		for i, u := range s {
			w[i] = f16FromBits(u)
		}
		return
	}
	for i, u := range s {
		binary.LittleEndian.PutUint16(dst[2*i:], f16FromBits(u))
	}
}

// F32ToBytes writes src as little-endian f32 into dst (4·len(src) bytes).
func F32ToBytes(src []float32, dst []byte) {
	n := len(src)
	dst = dst[:4*n]
	if littleEndian && n > 0 {
		copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*n))
		return
	}
	for i, f := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
	}
}

// parallelMin is the element count below which conversion stays on the
// calling goroutine (a goroutine fan-out costs more than it saves).
const parallelMin = 1 << 18

// parallelChunks runs f over [0,n) split across GOMAXPROCS goroutines when n
// is large; the split points are multiples of 1024 elements.
func parallelChunks(n int, f func(lo, hi int)) {
	p := runtime.GOMAXPROCS(0)
	if n < parallelMin || p == 1 {
		f(0, n)
		return
	}
	step := (n/p + 1023) &^ 1023
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += step {
		hi := min(lo+step, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
