//go:build minitron_cuda || minitron_cudaemu

package cuda

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model/kernels"
)

// The device counterparts of package kernels' functions. Each takes the
// same arguments as its CPU twin with Bufs for slices (a zero Buf where the
// CPU takes nil), checks sizes, and queues the work; none waits for it.

// need checks that b has at least n elements.
func need(op, name string, b Buf, n int) error {
	if b.N < n {
		return fmt.Errorf("cuda: %s: %s has %d elements, need %d", op, name, b.N, n)
	}
	return nil
}

// rowBlock picks the block size of a one-block-per-row kernel.
func rowBlock(n int) [3]int {
	t := (n + 31) / 32 * 32
	return [3]int{min(max(t, 32), 512), 1, 1}
}

// Embedding gathers rows of table [vocab, dim] for ids (int32, from
// UploadInts) into out [rows, dim]. Ids are not checked here: check them on
// the host (kernels.Embedding's error) before upload; an id outside the
// vocabulary yields a zero row.
func (d *Device) Embedding(out, table, ids Buf, rows, dim int) error {
	if dim <= 0 || table.N%dim != 0 {
		return fmt.Errorf("cuda: Embedding: table of %d elements is not [vocab, %d]", table.N, dim)
	}
	if err := firstErr(need("Embedding", "out", out, rows*dim), need("Embedding", "ids", ids, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("embedding_fwd", d.grid1(rows*dim), block256, 0, pp(out), pp(table), pp(ids), pi(rows), pi(dim), pi(table.N/dim))
}

// EmbeddingBackward adds dy [rows, dim] into the rows of dtable that ids
// name (atomic scatter-add: summation order is not fixed).
func (d *Device) EmbeddingBackward(dtable, dy, ids Buf, rows, dim int) error {
	if dim <= 0 || dtable.N%dim != 0 {
		return fmt.Errorf("cuda: EmbeddingBackward: table of %d elements is not [vocab, %d]", dtable.N, dim)
	}
	if err := firstErr(need("EmbeddingBackward", "dy", dy, rows*dim), need("EmbeddingBackward", "ids", ids, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("embedding_bwd", d.grid1(rows*dim), block256, 0, pp(dtable), pp(dy), pp(ids), pi(rows), pi(dim), pi(dtable.N/dim))
}

// Activate writes out = act(x) elementwise (kernels.Activation.Apply).
func (d *Device) Activate(a kernels.Activation, out, x Buf) error {
	if err := need("Activate", "out", out, x.N); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("act_fwd", d.grid1(x.N), block256, 0, pp(out), pp(x), pl(x.N), pi(int(a)))
}

func backwardOK(a kernels.Activation) error {
	switch a {
	case kernels.ReLU2, kernels.SiLU, kernels.ReLU:
		return nil
	}
	return fmt.Errorf("cuda: no backward for activation %v", a)
}

// ActivationBackward writes dx = dy·act'(x) (kernels.Activation.Backward).
func (d *Device) ActivationBackward(a kernels.Activation, dx, dy, x Buf) error {
	if err := firstErr(backwardOK(a), need("ActivationBackward", "dx", dx, x.N), need("ActivationBackward", "dy", dy, x.N)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("act_bwd", d.grid1(x.N), block256, 0, pp(dx), pp(dy), pp(x), pl(x.N), pi(int(a)))
}

// ApplyGated writes out[r,i] = act(gate[r,i])·up[r,i] for [rows, ld] views
// gate and up (first n columns), out [rows, n] (kernels ApplyGated).
func (d *Device) ApplyGated(a kernels.Activation, out, gate, up Buf, rows, n, ld int) error {
	in := (rows-1)*ld + n
	if err := firstErr(need("ApplyGated", "out", out, rows*n), need("ApplyGated", "gate", gate, in), need("ApplyGated", "up", up, in)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("act_gated_fwd", d.grid1(rows*n), block256, 0, pp(out), pp(gate), pp(up), pi(rows), pi(n), pi(ld), pi(int(a)))
}

// BackwardGated is kernels' BackwardGated: dgate and dup ([rows, ld]
// views) from dout [rows, n].
func (d *Device) BackwardGated(a kernels.Activation, dgate, dup, dout, gate, up Buf, rows, n, ld int) error {
	in := (rows-1)*ld + n
	if err := firstErr(backwardOK(a), need("BackwardGated", "dout", dout, rows*n), need("BackwardGated", "gate", gate, in),
		need("BackwardGated", "up", up, in), need("BackwardGated", "dgate", dgate, in), need("BackwardGated", "dup", dup, in)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("act_gated_bwd", d.grid1(rows*n), block256, 0, pp(dgate), pp(dup), pp(dout), pp(gate), pp(up), pi(rows), pi(n), pi(ld), pi(int(a)))
}

// Add writes dst += src (the residual connection).
func (d *Device) Add(dst, src Buf) error {
	if err := need("Add", "src", src, dst.N); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("add_inplace", d.grid1(dst.N), block256, 0, pp(dst), pp(src), pl(dst.N))
}

// AddBias adds bias to every row of x [rows, bias.N].
func (d *Device) AddBias(x, bias Buf, rows int) error {
	if err := need("AddBias", "x", x, rows*bias.N); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("add_bias", d.grid1(rows*bias.N), block256, 0, pp(x), pp(bias), pi(rows), pi(bias.N))
}

// Scale multiplies x by s in place (gradient clipping).
func (d *Device) Scale(x Buf, s float32) error {
	unlock := d.lock()
	defer unlock()
	return d.launch("scale_inplace", d.grid1(x.N), block256, 0, pp(x), pl(x.N), pf(s))
}

// ColSum writes out[j] = Σ_r x[r,j] for x [rows, dim] (kernels.ColSum).
func (d *Device) ColSum(out, x Buf, rows, dim int) error {
	if err := firstErr(need("ColSum", "out", out, dim), need("ColSum", "x", x, rows*dim)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("col_sum", [3]int{(dim + 31) / 32, 1, 1}, [3]int{32, 8, 1}, 0, pp(out), pp(x), pi(rows), pi(dim))
}

// LayerNorm1PStats is kernels.LayerNorm1PStats: mean, rstd and b may be
// zero Bufs.
func (d *Device) LayerNorm1PStats(out, mean, rstd, x, w, b Buf, rows, dim int, eps float32) error {
	if err := firstErr(need("LayerNorm1P", "x", x, rows*dim), need("LayerNorm1P", "out", out, rows*dim), need("LayerNorm1P", "w", w, dim)); err != nil {
		return err
	}
	if (!mean.IsNil() && mean.N < rows) || (!rstd.IsNil() && rstd.N < rows) || (!b.IsNil() && b.N < dim) {
		return fmt.Errorf("cuda: LayerNorm1P: mean/rstd need %d rows and b %d values", rows, dim)
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("layernorm1p_fwd", [3]int{rows, 1, 1}, rowBlock(dim), 0, pp(out), pp(mean), pp(rstd), pp(x), pp(w), pp(b), pi(rows), pi(dim), pf(eps))
}

// LayerNorm1PBackward is kernels.LayerNorm1PBackward (dx may be a zero Buf
// to skip it, db a zero Buf for a norm without bias).
func (d *Device) LayerNorm1PBackward(dx, dw, db, dy, x, w, mean, rstd Buf, rows, dim int, accumulate bool) error {
	if err := firstErr(need("LayerNorm1PBackward", "dy", dy, rows*dim), need("LayerNorm1PBackward", "x", x, rows*dim),
		need("LayerNorm1PBackward", "dw", dw, dim), need("LayerNorm1PBackward", "mean", mean, rows), need("LayerNorm1PBackward", "rstd", rstd, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	if !dx.IsNil() {
		if err := firstErr(need("LayerNorm1PBackward", "dx", dx, rows*dim), need("LayerNorm1PBackward", "w", w, dim)); err != nil {
			return err
		}
		if err := d.launch("layernorm1p_bwd_dx", [3]int{rows, 1, 1}, rowBlock(dim), 0, pp(dx), pp(dy), pp(x), pp(w), pp(mean), pp(rstd), pi(rows), pi(dim), pb(accumulate)); err != nil {
			return err
		}
	}
	return d.colReduce(rows, dim, []Buf{dw, db}, func(parts []Buf, chunks, chunkRows int) error {
		return d.launch("layernorm1p_bwd_dw", [3]int{(dim + 31) / 32, chunks, 1}, [3]int{32, 8, 1}, 0,
			pp(parts[0]), pp(parts[1]), pp(dy), pp(x), pp(mean), pp(rstd), pi(rows), pi(dim), pi(chunkRows))
	})
}

// normChunkRows is how many rows one block of a norm's weight-gradient
// kernel sums.
const normChunkRows = 128

// colReduce runs a column-sum kernel over rows in chunks of normChunkRows:
// with one chunk it writes outs directly; otherwise into [chunks, dim]
// partial buffers that col_sum then adds into outs. A zero Buf in outs
// stays zero (an absent bias). The caller holds the lock.
func (d *Device) colReduce(rows, dim int, outs []Buf, kernel func(parts []Buf, chunks, chunkRows int) error) error {
	chunks := max(1, (rows+normChunkRows-1)/normChunkRows)
	if chunks == 1 {
		return kernel(outs, 1, rows)
	}
	parts := make([]Buf, len(outs))
	for i, o := range outs {
		if o.IsNil() {
			continue
		}
		p, err := d.alloc(chunks * dim)
		if err != nil {
			return err
		}
		defer d.Free(p) // stream order keeps later reuse after these kernels
		parts[i] = p
	}
	if err := kernel(parts, chunks, normChunkRows); err != nil {
		return err
	}
	for i, o := range outs {
		if o.IsNil() {
			continue
		}
		if err := d.launch("col_sum", [3]int{(dim + 31) / 32, 1, 1}, [3]int{32, 8, 1}, 0, pp(o), pp(parts[i]), pi(chunks), pi(dim)); err != nil {
			return err
		}
	}
	return nil
}

// RMSNormStats is kernels.RMSNormStats (rstd may be a zero Buf).
func (d *Device) RMSNormStats(out, rstd, x, w Buf, rows, dim int, eps float32) error {
	if err := firstErr(need("RMSNorm", "x", x, rows*dim), need("RMSNorm", "out", out, rows*dim), need("RMSNorm", "w", w, dim)); err != nil {
		return err
	}
	if !rstd.IsNil() && rstd.N < rows {
		return fmt.Errorf("cuda: RMSNorm: rstd needs %d rows", rows)
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("rmsnorm_fwd", [3]int{rows, 1, 1}, rowBlock(dim), 0, pp(out), pp(rstd), pp(x), pp(w), pi(rows), pi(dim), pf(eps))
}

// RMSNormBackward is kernels.RMSNormBackward (dx may be a zero Buf).
func (d *Device) RMSNormBackward(dx, dw, dy, x, w, rstd Buf, rows, dim int, accumulate bool) error {
	if err := firstErr(need("RMSNormBackward", "dy", dy, rows*dim), need("RMSNormBackward", "x", x, rows*dim),
		need("RMSNormBackward", "dw", dw, dim), need("RMSNormBackward", "rstd", rstd, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	if !dx.IsNil() {
		if err := firstErr(need("RMSNormBackward", "dx", dx, rows*dim), need("RMSNormBackward", "w", w, dim)); err != nil {
			return err
		}
		if err := d.launch("rmsnorm_bwd_dx", [3]int{rows, 1, 1}, rowBlock(dim), 0, pp(dx), pp(dy), pp(x), pp(w), pp(rstd), pi(rows), pi(dim), pb(accumulate)); err != nil {
			return err
		}
	}
	return d.colReduce(rows, dim, []Buf{dw}, func(parts []Buf, chunks, chunkRows int) error {
		return d.launch("rmsnorm_bwd_dw", [3]int{(dim + 31) / 32, chunks, 1}, [3]int{32, 8, 1}, 0,
			pp(parts[0]), pp(dy), pp(x), pp(rstd), pi(rows), pi(dim), pi(chunkRows))
	})
}

// ApplyRope is kernels.ApplyRope on x [rows, ld] in place; pos is int32
// [rows], cos/sin the RopeTables [positions, rot/2]. inverse rotates back
// (the backward pass; the CPU negates the sin table instead).
func (d *Device) ApplyRope(x Buf, rows, ld, heads, headDim, rot int, pos, cos, sin Buf, inverse bool) error {
	if rot <= 0 || rot%2 != 0 || rot > headDim {
		return fmt.Errorf("cuda: ApplyRope: rotary dim %d must be even and in (0, %d]", rot, headDim)
	}
	if err := firstErr(need("ApplyRope", "x", x, (rows-1)*ld+heads*headDim), need("ApplyRope", "pos", pos, rows)); err != nil {
		return err
	}
	if cos.N != sin.N || cos.N%(rot/2) != 0 {
		return fmt.Errorf("cuda: ApplyRope: cos/sin tables of %d/%d values are not [positions, %d]", cos.N, sin.N, rot/2)
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("rope", d.grid1(rows*heads*rot/2), block256, 0, pp(x), pi(rows), pi(ld), pi(heads), pi(headDim), pi(rot), pp(pos), pp(cos), pp(sin), pb(inverse))
}

// fillDims applies kernels.AttnDims' defaults (packed strides, KSeqRows =
// Tk) and checks it.
func fillDims(a *kernels.AttnDims) error {
	if a.Batch <= 0 || a.Heads <= 0 || a.KVHeads <= 0 || a.HeadDim <= 0 || a.Tq <= 0 || a.Tk < a.Tq {
		return fmt.Errorf("cuda: attention: bad dims %+v", *a)
	}
	if a.Heads%a.KVHeads != 0 {
		return fmt.Errorf("cuda: attention: %d heads not a multiple of %d KV heads", a.Heads, a.KVHeads)
	}
	def := func(v *int, x int) {
		if *v == 0 {
			*v = x
		}
	}
	def(&a.LdQ, a.Heads*a.HeadDim)
	def(&a.LdO, a.Heads*a.HeadDim)
	def(&a.LdK, a.KVHeads*a.HeadDim)
	def(&a.LdV, a.KVHeads*a.HeadDim)
	def(&a.KSeqRows, a.Tk)
	return nil
}

// attnStaticSmem is the reference attention kernels' static shared memory
// (red[32]): a block's static and dynamic shared memory together must fit
// MaxSmem, or the launch fails on a GPU (the emulator sees only the
// dynamic part).
const attnStaticSmem = 4 * 32

// AttentionMaxTk is the most keys Attention takes at head dimension hd:
// the query and a row of Tk scores live in shared memory (about 12k with
// 48 KiB).
func (d *Device) AttentionMaxTk(hd int) int { return (d.MaxSmem-attnStaticSmem)/4 - hd }

// Attention is kernels.Attention: causal (optionally sliding-window) GQA
// attention, probs (a zero Buf to skip) receiving [Batch, Heads, Tq, Tk].
// This kernel keeps a query row's scores in shared memory, so Tk is
// limited to AttentionMaxTk (about 12k with 48 KiB).
func (d *Device) Attention(out, q, k, v Buf, a kernels.AttnDims, probs Buf) error {
	if err := fillDims(&a); err != nil {
		return err
	}
	hd := a.HeadDim
	smem := 4 * (hd + a.Tk)
	if a.Tk > d.AttentionMaxTk(hd) {
		return fmt.Errorf("cuda: attention: Tk %d needs %d bytes of shared memory per block (and %d static), the device allows %d",
			a.Tk, smem, attnStaticSmem, d.MaxSmem)
	}
	kvRows := (a.Batch-1)*a.KSeqRows + a.Tk
	if err := firstErr(
		need("Attention", "q", q, (a.Batch*a.Tq-1)*a.LdQ+a.Heads*hd),
		need("Attention", "out", out, (a.Batch*a.Tq-1)*a.LdO+a.Heads*hd),
		need("Attention", "k", k, (kvRows-1)*a.LdK+a.KVHeads*hd),
		need("Attention", "v", v, (kvRows-1)*a.LdV+a.KVHeads*hd)); err != nil {
		return err
	}
	if !probs.IsNil() {
		if err := need("Attention", "probs", probs, a.Batch*a.Heads*a.Tq*a.Tk); err != nil {
			return err
		}
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	unlock := d.lock()
	defer unlock()
	return d.launch("attention_fwd", [3]int{a.Tq, a.Heads, a.Batch}, [3]int{128, 1, 1}, smem,
		pp(out), pp(q), pp(k), pp(v), pp(probs), pi(a.Heads), pi(a.KVHeads), pi(hd), pi(a.Tq), pi(a.Tk), pi(a.Window),
		pi(a.LdQ), pi(a.LdK), pi(a.LdV), pi(a.LdO), pi(a.KSeqRows), pf(scale))
}

// AttentionBackward is kernels.AttentionBackward (Tq == Tk, packed):
// dq overwritten, dk and dv overwritten (zeroed here, then accumulated
// atomically over the query rows and the heads of each GQA group).
func (d *Device) AttentionBackward(dq, dk, dv, dout, q, k, v, probs Buf, a kernels.AttnDims, ldDQ, ldDK, ldDV int) error {
	if err := fillDims(&a); err != nil {
		return err
	}
	if a.Tq != a.Tk || a.KSeqRows != a.Tk {
		return fmt.Errorf("cuda: AttentionBackward needs Tq == Tk and packed sequences")
	}
	T, hd := a.Tq, a.HeadDim
	smem := 4 * (2*hd + T)
	if smem+attnStaticSmem > d.MaxSmem {
		return fmt.Errorf("cuda: attention backward: T %d needs %d bytes of shared memory per block (and %d static), the device allows %d",
			T, smem, attnStaticSmem, d.MaxSmem)
	}
	rows := a.Batch * T
	if err := firstErr(
		need("AttentionBackward", "probs", probs, a.Batch*a.Heads*T*T),
		need("AttentionBackward", "dq", dq, (rows-1)*ldDQ+a.Heads*hd),
		need("AttentionBackward", "dk", dk, (rows-1)*ldDK+a.KVHeads*hd),
		need("AttentionBackward", "dv", dv, (rows-1)*ldDV+a.KVHeads*hd),
		need("AttentionBackward", "dout", dout, (rows-1)*a.LdO+a.Heads*hd)); err != nil {
		return err
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	unlock := d.lock()
	defer unlock()
	kv := a.KVHeads * hd
	if err := d.launch("zero_band", d.grid1(rows*kv), block256, 0, pp(dk), pi(rows), pi(kv), pi(ldDK)); err != nil {
		return err
	}
	if err := d.launch("zero_band", d.grid1(rows*kv), block256, 0, pp(dv), pi(rows), pi(kv), pi(ldDV)); err != nil {
		return err
	}
	return d.launch("attention_bwd", [3]int{T, a.Heads, a.Batch}, [3]int{128, 1, 1}, smem,
		pp(dq), pp(dk), pp(dv), pp(dout), pp(q), pp(k), pp(v), pp(probs), pi(a.Heads), pi(a.KVHeads), pi(hd), pi(T),
		pi(a.LdQ), pi(a.LdK), pi(a.LdV), pi(a.LdO), pi(ldDQ), pi(ldDK), pi(ldDV), pf(scale))
}

func (d *Device) rows(op, name string, out, x Buf, rows, n int) error {
	if err := firstErr(need(op, "x", x, rows*n), need(op, name, out, rows*n)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch(name, [3]int{rows, 1, 1}, rowBlock(n), 0, pp(out), pp(x), pi(rows), pi(n))
}

// SoftmaxRows is kernels.SoftmaxRows (a row of −Inf becomes zeros).
func (d *Device) SoftmaxRows(out, x Buf, rows, n int) error {
	return d.rows("SoftmaxRows", "softmax_rows", out, x, rows, n)
}

// LogSoftmaxRows is kernels.LogSoftmaxRows.
func (d *Device) LogSoftmaxRows(out, x Buf, rows, n int) error {
	return d.rows("LogSoftmaxRows", "log_softmax_rows", out, x, rows, n)
}

// LogSumExpRows is kernels.LogSumExpRows (lse [rows]).
func (d *Device) LogSumExpRows(lse, x Buf, rows, n int) error {
	if err := firstErr(need("LogSumExpRows", "x", x, rows*n), need("LogSumExpRows", "lse", lse, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("logsumexp_rows", [3]int{rows, 1, 1}, rowBlock(n), 0, pp(lse), pp(x), pi(rows), pi(n))
}

// SoftmaxCrossEntropy is kernels.SoftmaxCrossEntropy with targets int32
// [rows] (negative: ignored row) and rowLoss [rows]. grad may alias logits
// when accumulate is false.
func (d *Device) SoftmaxCrossEntropy(grad, logits, targets Buf, rows, n int, scale float32, accumulate bool, rowLoss Buf) error {
	if err := firstErr(need("SoftmaxCrossEntropy", "logits", logits, rows*n), need("SoftmaxCrossEntropy", "grad", grad, rows*n),
		need("SoftmaxCrossEntropy", "targets", targets, rows), need("SoftmaxCrossEntropy", "rowLoss", rowLoss, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("cross_entropy", [3]int{rows, 1, 1}, rowBlock(n), 0, pp(grad), pp(rowLoss), pp(logits), pp(targets), pi(rows), pi(n), pf(scale), pb(accumulate))
}

func (d *Device) kl(op, name string, grad, student, teacher Buf, rows, n int, tau, scale float32, accumulate bool, rowLoss Buf) error {
	if tau <= 0 {
		return fmt.Errorf("cuda: %s: temperature %g must be positive", op, tau)
	}
	if err := firstErr(need(op, "student", student, rows*n), need(op, "teacher", teacher, rows*n), need(op, "grad", grad, rows*n), need(op, "rowLoss", rowLoss, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch(name, [3]int{rows, 1, 1}, rowBlock(n), 0, pp(grad), pp(rowLoss), pp(student), pp(teacher), pi(rows), pi(n), pf(tau), pf(scale), pb(accumulate))
}

// KLForward is kernels.KLForward: KL(teacher‖student) at temperature tau.
func (d *Device) KLForward(grad, student, teacher Buf, rows, n int, tau, scale float32, accumulate bool, rowLoss Buf) error {
	return d.kl("KLForward", "kl_forward", grad, student, teacher, rows, n, tau, scale, accumulate, rowLoss)
}

// KLReverse is kernels.KLReverse: KL(student‖teacher) at temperature tau.
func (d *Device) KLReverse(grad, student, teacher Buf, rows, n int, tau, scale float32, accumulate bool, rowLoss Buf) error {
	return d.kl("KLReverse", "kl_reverse", grad, student, teacher, rows, n, tau, scale, accumulate, rowLoss)
}

// KLForwardTopK is kernels.KLForwardTopK with idx int32 [rows, k] (distinct
// per row) and val [rows, k].
func (d *Device) KLForwardTopK(grad, student, idx, val Buf, k, rows, n int, tau, scale float32, accumulate bool, rowLoss Buf) error {
	if tau <= 0 || k <= 0 {
		return fmt.Errorf("cuda: KLForwardTopK: temperature %g and k %d must be positive", tau, k)
	}
	if err := firstErr(need("KLForwardTopK", "student", student, rows*n), need("KLForwardTopK", "grad", grad, rows*n),
		need("KLForwardTopK", "idx", idx, rows*k), need("KLForwardTopK", "val", val, rows*k), need("KLForwardTopK", "rowLoss", rowLoss, rows)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("kl_forward_topk", [3]int{rows, 1, 1}, rowBlock(n), 0, pp(grad), pp(rowLoss), pp(student), pp(idx), pp(val), pi(k), pi(rows), pi(n), pf(tau), pf(scale), pb(accumulate))
}

// AdamW updates w in place from gradient g and moments m, v (all the same
// length) with one update's scalars, kernels.AdamWStep's rule.
func (d *Device) AdamW(w, g, m, v Buf, s kernels.AdamWScalars) error {
	if err := firstErr(need("AdamW", "g", g, w.N), need("AdamW", "m", m, w.N), need("AdamW", "v", v, w.N)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("adamw", d.grid1(w.N), block256, 0, pp(w), pp(g), pp(m), pp(v), pl(w.N),
		pf(s.B1), pf(s.B2), pf(s.Step), pf(s.RBC2), pf(s.Eps), pf(s.Decay))
}

// SumSquares returns Σ x² over all the buffers, accumulated in float64 (the
// square of distill.GradNorm). It waits for the result.
func (d *Device) SumSquares(bufs ...Buf) (float64, error) {
	spans := make([]span, len(bufs))
	for i, b := range bufs {
		spans[i] = span{b.Ptr, b.N}
	}
	return d.sumSquares("sum_squares", spans)
}

// span is a device buffer's address and element count, of either type.
type span struct {
	ptr DevicePtr
	n   int
}

// sumSquares runs kernel (f32 or bf16 elements) over each buffer into one
// float64 accumulator and waits for it.
func (d *Device) sumSquares(kernel string, bufs []span) (float64, error) {
	unlock := d.lock()
	defer unlock()
	acc, err := d.alloc(2)
	if err != nil {
		return 0, err
	}
	defer d.Free(acc)
	if err := d.memset32(acc.Ptr, 2); err != nil {
		return 0, err
	}
	for _, b := range bufs {
		if b.n == 0 {
			continue
		}
		if err := d.launch(kernel, d.grid1(b.n), block256, 0, pp(acc), uint64(b.ptr), pl(b.n)); err != nil {
			return 0, err
		}
	}
	out := make([]float64, 1)
	if err := d.downloadFloat64(out, acc); err != nil {
		return 0, err
	}
	return out[0], nil
}

// Sequence reductions of ImportanceStats.AddBatch (importance.SeqAgg).
const (
	SeqMean = 0 // mean_t |x|
	SeqL2   = 1 // sqrt(Σ_t x²)
	SeqVar  = 2 // population variance of |x| over t
)

// ImportanceStats is importance.Accumulator's running sums on the device:
// for each of N channels, Σ_s v and Σ_s v² over samples s, where v is the
// sample's per-channel magnitude reduced over its tokens. Only the two
// N-vectors come back to the host (Sums), to be reduced over samples there.
type ImportanceStats struct {
	d          *Device
	N, Samples int
	sum, sumSq Buf // float64 [N] each
}

// NewImportanceStats allocates zeroed sums for n channels.
func (d *Device) NewImportanceStats(n int) (*ImportanceStats, error) {
	unlock := d.lock()
	defer unlock()
	s := &ImportanceStats{d: d, N: n}
	var err error
	if s.sum, err = d.alloc(2 * n); err != nil {
		return nil, err
	}
	if s.sumSq, err = d.alloc(2 * n); err != nil {
		d.Free(s.sum)
		return nil, err
	}
	if err := firstErr(d.memset32(s.sum.Ptr, int64(2*n)), d.memset32(s.sumSq.Ptr, int64(2*n))); err != nil {
		return nil, err
	}
	return s, nil
}

// AddBatch adds B samples of T tokens, x [B·T, N] (raw activations; |·| is
// taken), reducing over tokens with seq (SeqMean, SeqL2, SeqVar).
func (s *ImportanceStats) AddBatch(x Buf, B, T, seq int) error {
	if seq < SeqMean || seq > SeqVar {
		return fmt.Errorf("cuda: importance: unknown sequence reduction %d", seq)
	}
	if err := need("ImportanceStats.AddBatch", "x", x, B*T*s.N); err != nil {
		return err
	}
	d := s.d
	unlock := d.lock()
	defer unlock()
	if err := d.launch("importance_accumulate", [3]int{(s.N + 255) / 256, B, 1}, block256, 0, pp(s.sum), pp(s.sumSq), pp(x), pi(B), pi(T), pi(s.N), pi(seq)); err != nil {
		return err
	}
	s.Samples += B
	return nil
}

// Sums copies Σ_s v and Σ_s v² back (waiting for queued work).
func (s *ImportanceStats) Sums() (sum, sumSq []float64, err error) {
	d := s.d
	unlock := d.lock()
	defer unlock()
	sum, sumSq = make([]float64, s.N), make([]float64, s.N)
	if err := firstErr(d.downloadFloat64(sum, s.sum), d.downloadFloat64(sumSq, s.sumSq)); err != nil {
		return nil, nil, err
	}
	return sum, sumSq, nil
}

// Free returns the sums' memory to the pool.
func (s *ImportanceStats) Free() error {
	return firstErr(s.d.Free(s.sum), s.d.Free(s.sumSq))
}

// HeadNorms is importance.HeadNorms: dst [rows, heads] = per-head L2 norms
// of x [rows, heads·headDim].
func (d *Device) HeadNorms(dst, x Buf, rows, heads, headDim int) error {
	if err := firstErr(need("HeadNorms", "dst", dst, rows*heads), need("HeadNorms", "x", x, rows*heads*headDim)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	warps := rows * heads
	return d.launch("head_norms", [3]int{(warps*32 + 255) / 256, 1, 1}, block256, 0, pp(dst), pp(x), pi(rows), pi(heads), pi(headDim))
}

// BF16 is a device buffer of N bfloat16 values (from AllocBF16).
type BF16 struct {
	Ptr DevicePtr
	N   int
}

// AllocBF16 returns room for n bfloat16 values; free it with FreeBF16.
func (d *Device) AllocBF16(n int) (BF16, error) {
	b, err := d.Alloc((n + 1) / 2)
	return BF16{Ptr: b.Ptr, N: n}, err
}

// FreeBF16 returns a buffer from AllocBF16 to the pool.
func (d *Device) FreeBF16(b BF16) error { return d.Free(Buf{Ptr: b.Ptr, N: (b.N + 1) / 2}) }

// ToBF16 rounds x to bfloat16 (nearest even) into out.
func (d *Device) ToBF16(out BF16, x Buf) error {
	if out.N < x.N {
		return fmt.Errorf("cuda: ToBF16: %d values into room for %d", x.N, out.N)
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("f32_to_bf16", d.grid1(x.N), block256, 0, uint64(out.Ptr), pp(x), pl(x.N))
}

// FromBF16 widens x to float32 into out.
func (d *Device) FromBF16(out Buf, x BF16) error {
	if err := need("FromBF16", "out", out, x.N); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("bf16_to_f32", d.grid1(x.N), block256, 0, pp(out), uint64(x.Ptr), pl(x.N))
}

// AddBF16ToF32 adds the bf16 src to the f32 dst (dst += src).
func (d *Device) AddBF16ToF32(dst Buf, src BF16) error {
	if src.N < dst.N {
		return fmt.Errorf("cuda: AddBF16ToF32: src has %d values, want at least %d", src.N, dst.N)
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("add_bf16_to_f32", d.grid1(dst.N), block256, 0, pp(dst), uint64(src.Ptr), pl(dst.N))
}

// AddBF16 adds src to dst in f32, rounding each sum to bf16.
func (d *Device) AddBF16(dst, src BF16) error {
	if src.N < dst.N {
		return fmt.Errorf("cuda: AddBF16: src has %d values, want at least %d", src.N, dst.N)
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("add_bf16", d.grid1(dst.N), block256, 0, uint64(dst.Ptr), uint64(src.Ptr), pl(dst.N))
}

// AddRowsBF16 adds the f32 rows src [n, dim] into the bf16 rows of dst
// [vocab, dim] that idx (n distinct int32 ids) names, in f32 with one
// rounding per store: an embedding's gradient scatter-added over a
// micro-batch's distinct tokens (a compact f32 buffer) into its bf16
// gradient. Repeated ids would race on a GPU: dedupe them on the host.
func (d *Device) AddRowsBF16(dst BF16, src, idx Buf, n, dim int) error {
	if dim <= 0 || dst.N%dim != 0 {
		return fmt.Errorf("cuda: AddRowsBF16: dst of %d values is not [vocab, %d]", dst.N, dim)
	}
	if err := firstErr(need("AddRowsBF16", "src", src, n*dim), need("AddRowsBF16", "idx", idx, n)); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("add_rows_bf16", d.grid1(n*dim), block256, 0, uint64(dst.Ptr), pp(src), pp(idx), pi(n), pi(dim), pi(dst.N/dim))
}

// CopyBF16 copies src into dst (equal lengths).
func (d *Device) CopyBF16(dst, src BF16) error {
	return d.copyOnDevice(dst.Ptr, dst.N, src.Ptr, src.N, 2, "bf16 copy", "values")
}

// ScaleBF16 multiplies x by s in f32, rounding each product to bf16.
func (d *Device) ScaleBF16(x BF16, s float32) error {
	unlock := d.lock()
	defer unlock()
	return d.launch("scale_bf16", d.grid1(x.N), block256, 0, uint64(x.Ptr), pf(s), pl(x.N))
}

// SumSquaresBF16 returns Σ x² over the bf16 buffers, accumulated in
// float64 as SumSquares. It waits for the result.
func (d *Device) SumSquaresBF16(bufs ...BF16) (float64, error) {
	spans := make([]span, len(bufs))
	for i, b := range bufs {
		spans[i] = span{b.Ptr, b.N}
	}
	return d.sumSquares("sum_squares_bf16", spans)
}

// AdamWBF16Grad is AdamW with a bf16 gradient (f32 w, m, v).
func (d *Device) AdamWBF16Grad(w Buf, g BF16, m, v Buf, s kernels.AdamWScalars) error {
	if g.N < w.N {
		return fmt.Errorf("cuda: AdamWBF16Grad: g has %d values, want at least %d", g.N, w.N)
	}
	if err := firstErr(need("AdamWBF16Grad", "m", m, w.N), need("AdamWBF16Grad", "v", v, w.N)); err != nil {
		return err
	}
	unlock := d.lock()
	defer unlock()
	return d.launch("adamw_bf16g", d.grid1(w.N), block256, 0, pp(w), uint64(g.Ptr), pp(m), pp(v), pl(w.N),
		pf(s.B1), pf(s.B2), pf(s.Step), pf(s.RBC2), pf(s.Eps), pf(s.Decay))
}

// Off is the view from element lo to the end.
func (b BF16) Off(lo int) BF16 {
	if lo < 0 || lo > b.N {
		panic(fmt.Sprintf("cuda: offset %d of a %d-element bf16 buffer", lo, b.N))
	}
	return BF16{Ptr: b.Ptr + DevicePtr(2*lo), N: b.N - lo}
}

// Slice is the view of elements [lo, hi).
func (b BF16) Slice(lo, hi int) BF16 {
	if hi < lo || hi > b.N {
		panic(fmt.Sprintf("cuda: slice [%d:%d] of a %d-element bf16 buffer", lo, hi, b.N))
	}
	v := b.Off(lo)
	v.N = hi - lo
	return v
}
