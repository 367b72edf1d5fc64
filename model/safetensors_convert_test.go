package model

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

func le16(v uint16) []byte { return []byte{byte(v), byte(v >> 8)} }

func decodeBF16(u uint16) float32 {
	var out [1]float32
	BF16ToF32(le16(u), out[:])
	return out[0]
}

func decodeF16(u uint16) float32 {
	var out [1]float32
	F16ToF32(le16(u), out[:])
	return out[0]
}

func isNaN32(f float32) bool { return f != f }

// Every bf16 and f16 bit pattern survives decode→encode unchanged (NaNs stay
// NaN), so a bf16 checkpoint re-saved as bf16 is bit-identical.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		u := uint16(i)
		b := decodeBF16(u)
		if got := BF16FromF32(b); isNaN32(b) {
			if !isNaN32(decodeBF16(got)) {
				t.Fatalf("bf16 NaN %#04x re-encoded as non-NaN %#04x", u, got)
			}
		} else if got != u {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", u, b, got)
		}
		h := decodeF16(u)
		if got := F16FromF32(h); isNaN32(h) {
			if !isNaN32(decodeF16(got)) {
				t.Fatalf("f16 NaN %#04x re-encoded as %#04x", u, got)
			}
		} else if got != u {
			t.Fatalf("f16 %#04x -> %v -> %#04x", u, h, got)
		}
	}
}

// The f16 decoder agrees with an independent float64 formula.
func TestF16DecodeValues(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		u := uint16(i)
		e := int(u>>10) & 0x1f
		m := float64(u & 0x3ff)
		var want float64
		switch e {
		case 0:
			want = m * math.Pow(2, -24)
		case 31:
			if m != 0 {
				continue
			}
			want = math.Inf(1)
		default:
			want = (1 + m/1024) * math.Pow(2, float64(e-15))
		}
		if u&0x8000 != 0 {
			want = -want
		}
		if got := decodeF16(u); float64(got) != want {
			t.Fatalf("f16 %#04x = %v, want %v", u, got, want)
		}
	}
}

// checkNearestEven verifies enc(x) is the representable value nearest to x,
// ties to the even bit pattern, by looking at both neighbours.
func checkNearestEven(t *testing.T, kind string, x float32, enc func(float32) uint16, dec func(uint16) float32) {
	t.Helper()
	h := enc(x)
	got := float64(dec(h))
	if math.IsInf(got, 0) {
		return // overflow cases are checked separately
	}
	d := math.Abs(float64(x) - got)
	for _, nb := range []uint16{h - 1, h + 1} {
		if nb&0x7fff == 0x7fff || (h&0x7fff == 0 && nb == h-1) {
			continue
		}
		v := float64(dec(nb))
		if isNaN32(float32(v)) || math.IsInf(v, 0) || math.Signbit(v) != math.Signbit(got) && got != 0 {
			continue
		}
		dn := math.Abs(float64(x) - v)
		if dn < d || (dn == d && h&1 == 1) {
			t.Fatalf("%s(%v) = %#04x (%v), but %#04x (%v) is nearer or the even tie", kind, x, h, got, nb, v)
		}
	}
}

func TestHalfRoundingNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		// Random f32 bit patterns over the ranges that matter, plus exact
		// midpoints between neighbouring half values and ±1 ulp around them.
		x := math.Float32frombits(r.Uint32())
		if isNaN32(x) || math.IsInf(float64(x), 0) {
			continue
		}
		checkNearestEven(t, "bf16", x, BF16FromF32, decodeBF16)
		if math.Abs(float64(x)) < 65504 {
			checkNearestEven(t, "f16", x, F16FromF32, decodeF16)
		}
		h := uint16(r.IntN(0x7bff))
		lo, hi := float64(decodeF16(h)), float64(decodeF16(h+1))
		mid := float32((lo + hi) / 2) // exact in f32: halves have 11 significant bits
		for _, y := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			checkNearestEven(t, "f16", y, F16FromF32, decodeF16)
			checkNearestEven(t, "f16", -y, F16FromF32, decodeF16)
		}
		b := uint16(r.IntN(0x7f7f))
		blo, bhi := float64(decodeBF16(b)), float64(decodeBF16(b+1))
		bmid := float32((blo + bhi) / 2)
		for _, y := range []float32{bmid, math.Nextafter32(bmid, 0), math.Nextafter32(bmid, 1e38)} {
			checkNearestEven(t, "bf16", y, BF16FromF32, decodeBF16)
		}
	}
}

func TestHalfSpecialValues(t *testing.T) {
	cases := []struct {
		x      float32
		bf, f  uint16
		reason string
	}{
		{0, 0, 0, "zero"},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000, "negative zero keeps its sign"},
		{1, 0x3f80, 0x3c00, "one"},
		{-2, 0xc000, 0xc000, "minus two"},
		{65504, 0x4780, 0x7bff, "largest finite half"},
		{65519, 0x4780, 0x7bff, "just under the half overflow midpoint rounds down"},
		{65520, 0x4780, 0x7c00, "the midpoint to 65536 ties away to inf (even)"},
		{1e6, 0x4974, 0x7c00, "half overflows to +inf"},
		{-1e6, 0xc974, 0xfc00, "and -inf"},
		{float32(math.Inf(1)), 0x7f80, 0x7c00, "inf"},
		{math.MaxFloat32, 0x7f80, 0x7c00, "max f32 rounds to bf16 inf (nearest even)"},
		{5.960464477539063e-08, 0x3380, 0x0001, "2^-24, smallest half subnormal"},
		{2.9802322387695312e-08, 0x3300, 0x0000, "2^-25 ties to even: zero"},
		{2.98023259e-08, 0x3300, 0x0001, "just over 2^-25 rounds up to the smallest subnormal"},
		{6.097555160522461e-05, 0x3880, 0x03ff, "largest half subnormal (bf16 rounds up to 2^-14)"},
		{6.103515625e-05, 0x3880, 0x0400, "2^-14, smallest normal half"},
		{1.00390625, 0x3f80, 0x3c04, "1+2^-8: bf16 tie to even (down)"},
		{1.01171875, 0x3f82, 0x3c0c, "1+3·2^-8: bf16 tie to even (up)"},
	}
	for _, c := range cases {
		if got := BF16FromF32(c.x); got != c.bf {
			t.Errorf("bf16(%v) = %#04x, want %#04x (%s)", c.x, got, c.bf, c.reason)
		}
		if got := F16FromF32(c.x); got != c.f {
			t.Errorf("f16(%v) = %#04x, want %#04x (%s)", c.x, got, c.f, c.reason)
		}
	}
	nan := float32(math.NaN())
	if !isNaN32(decodeBF16(BF16FromF32(nan))) || !isNaN32(decodeF16(F16FromF32(nan))) {
		t.Error("NaN must stay NaN")
	}
	// A NaN whose payload sits only in the low bits must not become inf.
	low := math.Float32frombits(0x7f800001)
	if !isNaN32(decodeBF16(BF16FromF32(low))) || !isNaN32(decodeF16(F16FromF32(low))) {
		t.Error("low-payload NaN truncated to inf")
	}
}

// The word-reinterpreting fast paths and the byte-wise fallback agree,
// including odd lengths and misaligned buffers.
func TestConvertAlignedAndUnaligned(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 3, 4, 5, 1023, parallelMin + 77} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(r.NormFloat64())
		}
		for _, dt := range []DType{F32, BF16, F16} {
			sz := dt.Size()
			buf := make([]byte, n*sz+1)
			for _, off := range []int{0, 1} {
				enc := buf[off : off+n*sz]
				if err := EncodeF32(dt, src, enc); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					var want uint32
					switch dt {
					case F32:
						want = math.Float32bits(src[i])
					case BF16:
						want = uint32(BF16FromF32(src[i]))
					case F16:
						want = uint32(F16FromF32(src[i]))
					}
					var got uint32
					if sz == 4 {
						got = binary.LittleEndian.Uint32(enc[4*i:])
					} else {
						got = uint32(binary.LittleEndian.Uint16(enc[2*i:]))
					}
					if got != want {
						t.Fatalf("%s n=%d off=%d: element %d encoded %#x, want %#x", dt, n, off, i, got, want)
					}
				}
				out := make([]float32, n)
				if err := DecodeF32(dt, enc, out); err != nil {
					t.Fatal(err)
				}
				for i := range out {
					if out[i] != roundTo(dt, src[i]) {
						t.Fatalf("%s n=%d off=%d: element %d decoded %v, want %v", dt, n, off, i, out[i], roundTo(dt, src[i]))
					}
				}
			}
		}
	}
	if err := DecodeF32(BF16, make([]byte, 5), make([]float32, 2)); err == nil {
		t.Error("length mismatch must fail")
	}
	if err := DecodeF32("I8", nil, nil); err == nil {
		t.Error("unknown dtype must fail")
	}
}

func benchDecode(b *testing.B, dt DType) {
	const n = 1 << 22
	src := make([]byte, n*dt.Size())
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]float32, n)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		DecodeF32(dt, src, dst)
	}
}

func BenchmarkDecodeBF16(b *testing.B) { benchDecode(b, BF16) }
func BenchmarkDecodeF16(b *testing.B)  { benchDecode(b, F16) }
func BenchmarkDecodeF32(b *testing.B)  { benchDecode(b, F32) }

func benchEncode(b *testing.B, dt DType) {
	const n = 1 << 22
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(i) * 1e-3
	}
	dst := make([]byte, n*dt.Size())
	b.SetBytes(int64(len(dst)))
	for b.Loop() {
		EncodeF32(dt, src, dst)
	}
}

func BenchmarkEncodeBF16(b *testing.B) { benchEncode(b, BF16) }
func BenchmarkEncodeF16(b *testing.B)  { benchEncode(b, F16) }
