//go:build minitron_cuda || minitron_cudaemu

package gpu

import (
	"fmt"

	"github.com/minitron-dev/minitron/distill"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// teacherTopK selects the teacher's top-k logits of rows [r0, r0+n) — the
// chunk its logits buffer holds — (Losses.TopK > 0) into those rows of
// topIdx and topVal: on the device (cuda.Device.TopK, kernels.TopK's
// result exactly), or, for a k beyond what its shared-memory sort holds, on
// the host with kernels.TopK (the teacher's logits go down once per
// chunk).
func (t *Engine) teacherTopK(r0, n int) error {
	k := t.Losses.TopK
	if k <= 0 || t.Teacher == nil {
		return nil
	}
	s, d := t.S, t.S.d
	V := s.Cfg.VocabSize
	idx, val, logits := t.topIdx.Slice(r0*k, (r0+n)*k), t.topVal.Slice(r0*k, (r0+n)*k), t.Teacher.logits.Slice(0, n*V)
	if k <= d.MaxTopK() {
		return d.TopK(idx, val, logits, n, V, k)
	}
	if t.hostT == nil {
		C := s.LogitChunk()
		t.hostT, t.hostVal, t.hostIdx = make([]float32, C*V), make([]float32, C*k), make([]int32, C*k)
	}
	if err := d.Download(t.hostT[:n*V], logits); err != nil {
		return err
	}
	kernels.TopK(t.hostIdx[:n*k], t.hostVal[:n*k], t.hostT[:n*V], n, V, k)
	if err := d.CopyFromInt32(idx, t.hostIdx[:n*k]); err != nil {
		return err
	}
	return d.CopyFrom(val, t.hostVal[:n*k])
}

// klForward is the forward KL term over the n rows from r0 whose logits
// are in student (the teacher's chunk in its logits buffer): over the
// teacher's top-k logits when Losses.TopK > 0, else over all of them.
func (t *Engine) klForward(grad, student cuda.Buf, r0, n int, scale float32, acc bool, rowLoss cuda.Buf) error {
	s, d := t.S, t.S.d
	V := s.Cfg.VocabSize
	if k := t.Losses.TopK; k > 0 {
		return d.KLForwardTopK(grad, student, t.topIdx.Slice(r0*k, (r0+n)*k), t.topVal.Slice(r0*k, (r0+n)*k), k, n, V, t.Losses.Tau(), scale, acc, rowLoss)
	}
	return d.KLForward(grad, student, t.Teacher.logits.Slice(0, n*V), n, V, t.Losses.Tau(), scale, acc, rowLoss)
}

// ReadParam downloads tensor name's current weights into dst (for
// checkpoints written from the host).
func (m *Model) ReadParam(name string, dst []float32) error {
	i, ok := m.byName[name]
	if !ok {
		return fmt.Errorf("gpu: no tensor %q on the device", name)
	}
	return m.downloadParam(m.params[i], dst)
}

// Tensors implements distill.Engine: the student's tensors in arena
// order, then the intermediate-state projection.
func (t *Engine) Tensors() []model.TensorInfo {
	out := make([]model.TensorInfo, 0, len(t.S.params)+1)
	for _, p := range t.S.params {
		out = append(out, model.TensorInfo{Name: p.name, DType: model.F32, Shape: p.shape})
	}
	if l := t.is; l != nil {
		out = append(out, model.TensorInfo{Name: distill.ISProjName, DType: model.F32, Shape: []int{l.ht, l.hs}})
	}
	return out
}

// stateBufs are tensor name's device buffers: weights (zero for a tensor
// stored only in bf16) and moments, checked against the host slices'
// lengths (nil ones are skipped).
func (t *Engine) stateBufs(name string, host ...[]float32) (w, m1, m2 cuda.Buf, err error) {
	if l := t.is; l != nil && name == distill.ISProjName {
		w, m1, m2 = l.w, l.m1, l.m2
	} else {
		i, ok := t.S.byName[name]
		if !ok {
			return w, m1, m2, fmt.Errorf("gpu: no trained tensor %q on the device", name)
		}
		p := t.S.params[i]
		w = t.S.P(name)
		if t.shard == nil {
			if err := t.ensure(false, true); err != nil {
				return w, m1, m2, err
			}
			m1, m2 = t.mom1.Slice(p.aoff, p.aoff+p.n), t.mom2.Slice(p.aoff, p.aoff+p.n)
		}
	}
	n := m1.N
	if t.shard != nil {
		// sharded (ZeRO): the moments are by arena range (ReadMoments)
		if len(host) > 1 && (host[1] != nil || host[2] != nil) {
			return w, m1, m2, fmt.Errorf("gpu: tensor %q: the moments are sharded over the ranks (ReadMoments)", name)
		}
		n = t.tensorSize(name)
	}
	for _, h := range host {
		if h != nil && len(h) != n {
			return w, m1, m2, fmt.Errorf("gpu: tensor %q has %d elements, host buffer %d", name, n, len(h))
		}
	}
	return w, m1, m2, nil
}

// ReadState implements distill.Engine: one tensor's weights and moments,
// downloaded.
func (t *Engine) ReadState(name string, w, m1, m2 []float32) error {
	if t.off != nil && name != distill.ISProjName {
		return t.offloadState(name, w, m1, m2, false)
	}
	if t.masters() && w != nil && name != distill.ISProjName {
		// the bf16 weights widened (the f32 masters are sharded: ReadMasters)
		if err := t.S.ReadParam(name, w); err != nil {
			return err
		}
		w = nil
		if m1 == nil && m2 == nil {
			return nil
		}
	}
	return t.moveState(name, w, m1, m2, t.S.d.Download)
}

// WriteState implements distill.Engine: one tensor's weights and moments,
// uploaded (and the weights' bf16 shadow refreshed).
func (t *Engine) WriteState(name string, w, m1, m2 []float32) error {
	if t.off != nil && name != distill.ISProjName {
		return t.offloadState(name, w, m1, m2, true)
	}
	if t.masters() && w != nil {
		if name != distill.ISProjName {
			if err := t.writeParamMasters(name, w); err != nil {
				return err
			}
			w = nil
			if m1 == nil && m2 == nil {
				return nil
			}
		} else if err := t.writeShardMasters(t.S.arenaN, w); err != nil {
			return err
		}
	}
	err := t.moveState(name, w, m1, m2, t.copyUp)
	if err == nil && w != nil && t.S.bf16 && name != distill.ISProjName {
		err = t.S.d.ToBF16(t.S.PB(name), t.S.P(name))
	}
	return err
}

// moveState runs move on each non-nil host slice with its device buffer.
func (t *Engine) moveState(name string, w, m1, m2 []float32, move func(host []float32, buf cuda.Buf) error) error {
	wb, b1, b2, err := t.stateBufs(name, w, m1, m2)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		host []float32
		buf  cuda.Buf
	}{{w, wb}, {m1, b1}, {m2, b2}} {
		if x.host != nil {
			if err := move(x.host, x.buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyUp uploads host into buf: Download's counterpart in moveState's
// argument order.
func (t *Engine) copyUp(host []float32, buf cuda.Buf) error { return t.S.d.CopyFrom(buf, host) }

// Eval implements distill.Engine: the forward pass on tokens without an
// update, with the losses of Losses.EvalTerms (the teacher's logits are
// whole on the device) and the intermediate-state loss. The loss kernels
// run zero-weighted, which leaves the logits as they are, so every term
// reads the same logits.
func (t *Engine) Eval(tokens [][]int32) (distill.Parts, error) {
	s := t.S
	if err := t.forward(tokens); err != nil {
		return distill.Parts{}, err
	}
	terms := t.Losses.EvalTerms(t.Teacher != nil, t.Teacher != nil)
	p, err := t.loss(terms, 1, false)
	if err != nil {
		return p, err
	}
	if t.is != nil {
		if err := t.is.forward(s, &p, terms); err != nil {
			return p, err
		}
	}
	p.Loss = distill.Mix(terms, p)
	return p, nil
}

// tensorSize is a trained tensor's element count.
func (t *Engine) tensorSize(name string) int {
	if l := t.is; l != nil && name == distill.ISProjName {
		return l.ht * l.hs
	}
	return t.S.params[t.S.byName[name]].n
}

// ReadGrad downloads tensor name's gradient of the step in progress (the
// sum over its micro-batches so far) into dst.
func (t *Engine) ReadGrad(name string, dst []float32) error {
	i, ok := t.S.byName[name]
	if !ok {
		return fmt.Errorf("gpu: no tensor %q on the device", name)
	}
	p := t.S.params[i]
	if t.bk != nil {
		return fmt.Errorf("gpu: gradient of %q: reduced onto the ranks after each backward pass (ZeRO shard's sum)", name)
	}
	if len(dst) != p.n {
		return fmt.Errorf("gpu: gradient of %q has %d elements, dst %d", name, p.n, len(dst))
	}
	if gl := t.gl; gl != nil {
		if gl.bf[i] {
			return t.S.downloadBF16(dst, t.stepGradB().Slice(gl.at[i], gl.at[i]+p.n))
		}
		return t.S.d.Download(dst, t.stepGrad().Slice(gl.at[i], gl.at[i]+p.n))
	}
	return t.S.d.Download(dst, t.stepGrad().Slice(p.aoff, p.aoff+p.n))
}
