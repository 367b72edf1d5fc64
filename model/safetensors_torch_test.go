package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestTorchHalvesFixture checks our reader and rounding against PyTorch:
// testdata/io/torch_halves.* were written by gen_torch_fixture.py (torch's
// own .bfloat16()/.half() rounding, a hand-written safetensors file with an
// odd-length header so the unaligned decode path runs).
func TestTorchHalvesFixture(t *testing.T) {
	dir := filepath.Join("testdata", "io")
	var want struct {
		F32Bits       []uint32 `json:"f32_bits"`
		BF16Bits      []uint16 `json:"bf16_bits"`
		F16Bits       []uint16 `json:"f16_bits"`
		BF16AsF32Bits []uint32 `json:"bf16_as_f32_bits"`
		F16AsF32Bits  []uint32 `json:"f16_as_f32_bits"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "torch_halves.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSafetensors(filepath.Join(dir, "torch_halves.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Header().HeaderLen%2 == 0 {
		t.Fatal("fixture should have an odd header length (unaligned data)")
	}
	n := len(want.F32Bits)
	read := func(name string) []float32 {
		out := make([]float32, n)
		if err := f.ReadF32(name, out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	orig, bf, hf := read("f32"), read("bf16"), read("f16")
	for i := 0; i < n; i++ {
		if math.Float32bits(orig[i]) != want.F32Bits[i] {
			t.Fatalf("f32[%d] decoded %#x, torch %#x", i, math.Float32bits(orig[i]), want.F32Bits[i])
		}
		if got := math.Float32bits(bf[i]); got != want.BF16AsF32Bits[i] {
			t.Fatalf("bf16[%d] decoded %#x, torch %#x", i, got, want.BF16AsF32Bits[i])
		}
		if got := math.Float32bits(hf[i]); got != want.F16AsF32Bits[i] {
			t.Fatalf("f16[%d] decoded %#x, torch %#x", i, got, want.F16AsF32Bits[i])
		}
		if got := BF16FromF32(orig[i]); got != want.BF16Bits[i] {
			t.Errorf("BF16FromF32(%v) = %#04x, torch %#04x", orig[i], got, want.BF16Bits[i])
		}
		if got := F16FromF32(orig[i]); got != want.F16Bits[i] {
			t.Errorf("F16FromF32(%v) = %#04x, torch %#04x", orig[i], got, want.F16Bits[i])
		}
	}
}
