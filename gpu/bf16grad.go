//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// bf16 gradients (mixed precision without ZeRO, EngineConfig.BF16 with
// Zero 0): the weight matrices' gradients, written by the bf16 products
// (GemmBF16Out: f32 accumulation, one rounding per store), live in a bf16
// arena, gradB, half the bytes of their f32 arena; the norms', biases'
// and the embedding's (a scatter-add, kept f32 as the tied head's) stay in
// a compact f32 arena, grad. The micro-batch sum (accB), the clipping and
// the gradient norm run on the bf16 arena in f32 arithmetic, and AdamW
// widens each gradient to f32 as it reads it (AdamWBF16Grad), against the
// f32 master weights and moments. ZeRO 1 keeps the same arena and
// reduces it to the shards' owners after each backward pass; ZeRO 2
// reduces bf16 buckets instead (buckets.go).
type gradLayout struct {
	at []int  // per parameter: its offset in grad (f32) or gradB (bf16)
	bf []bool // per parameter: its gradient is bf16
	nF int    // f32 arena elements
	nB int    // bf16 arena elements (even: its host view is whole words)
}

// bf16Grad reports a parameter whose gradient is bf16: a weight matrix
// whose gradient a product writes (not the embedding's lookup).
func bf16Grad(p param) bool { return len(p.shape) == 2 && p.name != model.EmbedTensor }

func newGradLayout(ps []param) *gradLayout {
	l := &gradLayout{at: make([]int, len(ps)), bf: make([]bool, len(ps))}
	for i, p := range ps {
		if bf16Grad(p) {
			l.bf[i], l.at[i] = true, l.nB
			l.nB += alignBF16(p.n)
			continue
		}
		l.at[i] = l.nF
		l.nF += p.n
	}
	return l
}

// gradOfB is a bf16-gradient tensor's window of the bf16 arena, or of
// its bf16 bucket (ZeRO 2).
func (t *Engine) gradOfB(name string) (cuda.BF16, bool) {
	i, ok := t.S.byName[name]
	if !ok {
		return cuda.BF16{}, false
	}
	n := t.S.params[i].n
	if t.buckets() {
		g := t.bucketGrad(i, n)
		return g.b, g.bf
	}
	if t.gl == nil || !t.gl.bf[i] {
		return cuda.BF16{}, false
	}
	return t.gradB.Slice(t.gl.at[i], t.gl.at[i]+n), true
}

// stepGradB is the bf16 arena holding the step's gradient.
func (t *Engine) stepGradB() cuda.BF16 {
	if t.stepMicro > 1 && t.bk == nil {
		return t.accB
	}
	return t.gradB
}

// words is b's memory as f32 words (for whole-buffer copies; N even).
func words(b cuda.BF16) cuda.Buf { return cuda.Buf{Ptr: b.Ptr, N: b.N / 2} }

// commBufB is a bf16 buffer for a collective: host memory on the
// emulator, NCCL's device memory on a GPU.
func commBufB(b cuda.BF16) comm.Buffer {
	if h := cuda.HostViewBF16(b); h != nil {
		return comm.HostBF16(h)
	}
	return comm.DeviceBF16{Ptr: uintptr(b.Ptr), N: b.N}
}
