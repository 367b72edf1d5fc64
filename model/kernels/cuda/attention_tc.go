//go:build minitron_cuda || minitron_cudaemu

package cuda

import (
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model/kernels"
)

// The tensor-core attention path for training shapes (Tq == Tk, packed
// sequences): the products go to cuBLAS (TF32 tensor cores) as strided
// batched GEMMs over the KV groups, one call per (sequence, query head of
// the group), and two small row kernels do the masked softmax and its
// backward. It materialises the full [T, T] score matrix of every head in
// probs (half of it masked: twice the causal FLOPs, but on tensor cores),
// which the backward needs anyway. The reference kernel (Attention) stays
// for inference shapes and as the test oracle.

func tcDims(a *kernels.AttnDims) error {
	if err := fillDims(a); err != nil {
		return err
	}
	if a.Tq != a.Tk || a.KSeqRows != a.Tk {
		return fmt.Errorf("cuda: tensor-core attention needs Tq == Tk and packed sequences")
	}
	return nil
}

// AttentionTC is Attention for Tq == Tk through cuBLAS; probs [Batch,
// Heads, T, T] is required (it holds the scores, then the weights).
func (d *Device) AttentionTC(out, q, k, v Buf, a kernels.AttnDims, probs Buf) error {
	if err := tcDims(&a); err != nil {
		return err
	}
	T, hd, H, G := a.Tq, a.HeadDim, a.Heads, a.KVHeads
	group := H / G
	if err := need("AttentionTC", "probs", probs, a.Batch*H*T*T); err != nil {
		return err
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	for b := 0; b < a.Batch; b++ {
		for j := 0; j < group; j++ {
			// query heads g·group+j for g < G, each against KV head g
			qb, kb, sb := b*T*a.LdQ+j*hd, b*T*a.LdK, (b*H+j)*T*T
			if err := d.SgemmStridedBatched(false, true, T, T, hd, scale, q.Off(qb), a.LdQ, group*hd, k.Off(kb), a.LdK, hd,
				0, probs.Off(sb), T, group*T*T, G); err != nil {
				return fmt.Errorf("attention scores: %w", err)
			}
		}
	}
	unlock := d.lock()
	err := d.launch("attn_softmax_causal", [3]int{T, a.Batch * H, 1}, rowBlock(T), 0, pp(probs), pi(T), pi(a.Window))
	unlock()
	if err != nil {
		return err
	}
	for b := 0; b < a.Batch; b++ {
		for j := 0; j < group; j++ {
			sb, vb, ob := (b*H+j)*T*T, b*T*a.LdV, b*T*a.LdO+j*hd
			if err := d.SgemmStridedBatched(false, false, T, hd, T, 1, probs.Off(sb), T, group*T*T, v.Off(vb), a.LdV, hd,
				0, out.Off(ob), a.LdO, group*hd, G); err != nil {
				return fmt.Errorf("attention output: %w", err)
			}
		}
	}
	return nil
}

// AttentionBackwardTC is AttentionBackward through cuBLAS: dq, dk, dv
// overwritten (strides ldDQ, ldDK, ldDV), from the forward's probs.
func (d *Device) AttentionBackwardTC(dq, dk, dv, dout, q, k, v, probs Buf, a kernels.AttnDims, ldDQ, ldDK, ldDV int) error {
	if err := tcDims(&a); err != nil {
		return err
	}
	T, hd, H, G := a.Tq, a.HeadDim, a.Heads, a.KVHeads
	group := H / G
	if err := need("AttentionBackwardTC", "probs", probs, a.Batch*H*T*T); err != nil {
		return err
	}
	scratch, err := d.Alloc(G * T * T) // dP, then dS, of one call's G heads
	if err != nil {
		return err
	}
	defer d.Free(scratch)
	scale := float32(1 / math.Sqrt(float64(hd)))
	for b := 0; b < a.Batch; b++ {
		for j := 0; j < group; j++ {
			beta := float32(1) // the group's query heads add into their KV head
			if j == 0 {
				beta = 0
			}
			sb := (b*H + j) * T * T
			qb, kb, vb, ob := b*T*a.LdQ+j*hd, b*T*a.LdK, b*T*a.LdV, b*T*a.LdO+j*hd
			dqb, dkb, dvb := b*T*ldDQ+j*hd, b*T*ldDK, b*T*ldDV
			err := firstErr(
				// dV += Pᵀ·dO
				d.SgemmStridedBatched(true, false, T, hd, T, 1, probs.Off(sb), T, group*T*T, dout.Off(ob), a.LdO, group*hd,
					beta, dv.Off(dvb), ldDV, hd, G),
				// dP = dO·Vᵀ
				d.SgemmStridedBatched(false, true, T, T, hd, 1, dout.Off(ob), a.LdO, group*hd, v.Off(vb), a.LdV, hd,
					0, scratch, T, T*T, G))
			if err != nil {
				return err
			}
			unlock := d.lock()
			err = d.launch("attn_softmax_bwd", [3]int{T, G, 1}, rowBlock(T), 0, pp(scratch), pp(probs.Off(sb)), pi(T), pl(group*T*T), pf(scale))
			unlock()
			if err == nil {
				err = firstErr(
					// dQ = dS·K
					d.SgemmStridedBatched(false, false, T, hd, T, 1, scratch, T, T*T, k.Off(kb), a.LdK, hd,
						0, dq.Off(dqb), ldDQ, group*hd, G),
					// dK += dSᵀ·Q
					d.SgemmStridedBatched(true, false, T, hd, T, 1, scratch, T, T*T, q.Off(qb), a.LdQ, group*hd,
						beta, dk.Off(dkb), ldDK, hd, G))
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
