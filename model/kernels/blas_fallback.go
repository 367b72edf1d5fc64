package kernels

import (
	"os"
	"strings"

	"golang.org/x/sys/cpu"
)

// fallbackCores are the kernel sets an OpenBLAS with DYNAMIC_ARCH falls
// back to when it does not recognise the CPU model: OpenBLAS 0.3.21
// (Debian 12) runs Prescott's SSE3 kernels on Emerald Rapids (family 6,
// model 207), about a third of SkylakeX's speed there.
var fallbackCores = map[string]bool{"prescott": true, "core2": true, "katmai": true, "coppermine": true, "northwood": true, "banias": true, "atom": true}

// BetterBLASCore is the kernel set to use instead of the one OpenBLAS
// chose, or "" to keep it: only when OPENBLAS_CORETYPE is unset (a user's
// choice is kept) and OpenBLAS fell back to a generic set while the CPU has
// AVX-512 (SkylakeX's kernels) or AVX2 with FMA (Haswell's).
func BetterBLASCore() string {
	if _, set := os.LookupEnv("OPENBLAS_CORETYPE"); set || BLASBackend() != "openblas" {
		return ""
	}
	return betterCore(BLASCore(), cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512CD,
		cpu.X86.HasAVX2 && cpu.X86.HasFMA)
}

func betterCore(current string, avx512, avx2 bool) string {
	if !fallbackCores[strings.ToLower(current)] {
		return ""
	}
	switch {
	case avx512:
		return "SkylakeX"
	case avx2:
		return "Haswell"
	}
	return ""
}

// UpgradeBLASCore switches OpenBLAS to BetterBLASCore's choice, if any,
// and returns the kernel sets before and after (equal when nothing
// changed). Like SetBLASCore it must run before any matrix product.
func UpgradeBLASCore() (from, to string, err error) {
	from = BLASCore()
	want := BetterBLASCore()
	if want == "" {
		return from, from, nil
	}
	to, err = SetBLASCore(want)
	return from, to, err
}
