package distill

import (
	"fmt"
	"sort"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
)

// cpuEngine is the CPU's Engine: the student's gorgonia graph (Student),
// the teacher's forward pass (model.Model), gradient accumulation over a
// step's micro-batches and the AdamW moments, all in host memory.
type cpuEngine struct {
	s       *Student
	teacher *model.Model
	topK    *TopKCache
	opt     Optim
	infos   []model.TensorInfo
	offs    []int
	m, v    []float32   // AdamW moments, arena layout
	acc     []float32   // gradient sum over a step's micro-batches (more than one)
	grads   [][]float32 // the step's gradient per tensor
	ids     [][]int
	idx     map[string]int         // tensor name → index in infos
	scalars []kernels.AdamWScalars // the update's, per tensor (reused: the step allocates nothing)

	// Data parallel (Parallel): the arena elements [lo, hi) whose moments
	// m and v hold (all of them unless sharded), and with ownGrad (ZeRO 2)
	// the shard's gradient summed over the step's micro-batches.
	lo, hi  int
	sharded bool
	ownGrad bool
	gshard  []float32
}

func newCPUEngine(c EngineConfig) (Engine, error) {
	if c.Losses.NeedsTeacher() && c.Teacher == nil {
		return nil, fmt.Errorf("the losses (kl %g, reverse_kl %g) need a teacher", c.Losses.KL, c.Losses.ReverseKL)
	}
	if c.BF16 {
		return nil, fmt.Errorf("BF16 needs the CUDA device (the CPU engine trains in f32)")
	}
	if c.Recompute {
		return nil, fmt.Errorf("Recompute needs the CUDA device (the CPU engine keeps its graph's activations)")
	}
	s, err := newStudent(c.Arch, c.Weights, c.Batch, c.Seq, c.Losses, c.LogitChunk)
	if err != nil {
		return nil, err
	}
	e := &cpuEngine{s: s, teacher: c.Teacher, topK: c.TopKCache, opt: c.Optim, idx: map[string]int{}}
	for i, p := range s.Params {
		e.infos = append(e.infos, model.TensorInfo{Name: p.Name, DType: model.F32, Shape: p.Shape})
		e.idx[p.Name] = i
	}
	var total int
	e.offs, total = arenaOffsets(e.infos)
	e.m, e.v = make([]float32, total), make([]float32, total)
	e.hi = total
	e.grads = make([][]float32, len(s.Params))
	e.scalars = make([]kernels.AdamWScalars, len(s.Params))
	e.ids = make([][]int, s.Batch)
	for b := range e.ids {
		e.ids[b] = make([]int, s.Seq)
	}
	return e, nil
}

// teacherLogits fills the step state's teacher logits for a micro-batch:
// from the top-k cache when it holds them, else by the teacher's forward
// pass (capturing the hidden states the intermediate loss pairs).
func (e *cpuEngine) teacherLogits(tokens [][]int32) error {
	st := e.s.st
	if e.teacher == nil {
		return nil
	}
	if e.topK != nil && st.losses.TopK > 0 && !st.losses.NeedsFullTeacher() {
		idx, val, ok, err := e.topK.Lookup(tokens)
		if err != nil {
			return err
		}
		if ok {
			st.topIdx, st.topVal, st.teacher, st.teacherH = idx, val, nil, nil
			return nil
		}
	}
	for b, row := range tokens {
		for t := 0; t < e.s.Seq; t++ {
			e.ids[b][t] = int(row[t])
		}
	}
	var fo *model.ForwardOptions
	if pairs := st.losses.Intermediate; len(pairs) > 0 {
		// input_layernorm outputs and the final norm (layer = NumLayers)
		capture := func(layer, _, _ int, x []float32) {
			for i, p := range pairs {
				if p.Teacher == layer {
					copy(st.isTeacher[i], x)
				}
			}
		}
		fo = &model.ForwardOptions{Hooks: &model.Hooks{AttnNorm: capture, FinalNorm: capture}}
	}
	rows, V := e.s.Batch*e.s.Seq, e.s.Cfg.VocabSize
	if st.chunk > 0 {
		if err := st.teacherChunked(e.teacher, e.ids, fo, rows, V); err != nil {
			return err
		}
	} else {
		logits, err := e.teacher.Forward(e.ids, fo)
		if err != nil {
			return fmt.Errorf("teacher forward: %w", err)
		}
		st.teacher = logits
		if k := st.losses.TopK; k > 0 {
			if len(st.topIdx) != rows*k {
				st.topIdx, st.topVal = make([]int32, rows*k), make([]float32, rows*k)
			}
			kernels.TopK(st.topIdx, st.topVal, logits, rows, V, k)
		}
	}
	if e.topK != nil && st.losses.TopK > 0 {
		return e.topK.Store(tokens, st.topIdx, st.topVal)
	}
	return nil
}

func (e *cpuEngine) Micro(tokens [][]int32, i, n int) (Parts, error) {
	s := e.s
	s.st.gradScale = 1 / float32(s.Batch*s.Seq*n)
	if e.ownGrad {
		n, i = 1, 0 // the micro-batch's own gradient: the core reduces it
	}
	if n > 1 && e.acc == nil {
		e.acc = make([]float32, e.s.NumParams())
	}
	if err := e.teacherLogits(tokens); err != nil {
		return Parts{}, err
	}
	loss, err := s.trainStep(tokens)
	if err != nil {
		return Parts{}, err
	}
	p := s.st.parts
	p.Loss = loss
	for j, pr := range s.Params {
		g := pr.Grad()
		if n == 1 {
			e.grads[j] = g
			continue
		}
		a := e.acc[e.offs[j] : e.offs[j]+len(pr.Data)]
		if i == 0 {
			copy(a, g)
		} else {
			kernels.Add(a, g)
		}
		e.grads[j] = a
	}
	return p, nil
}

// GradSumSquares adds each tensor's sum of squares, computed on one
// goroutine each, in order: the result does not depend on the number of
// workers. Sharded, it covers the shard's part of each tensor.
func (e *cpuEngine) GradSumSquares() (float64, error) {
	parts := make([]float64, len(e.grads))
	kernels.ParallelFor(len(e.grads), 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if g := e.shardGrad(i); g != nil {
				parts[i] = kernels.SumSquares(g)
			}
		}
	})
	var s float64
	for _, p := range parts {
		s += p
	}
	return s, nil
}

// shardGrad is tensor i's gradient inside [lo, hi) (all of it unless
// sharded; nil when none of it is).
func (e *cpuEngine) shardGrad(i int) []float32 {
	if !e.sharded {
		return e.grads[i]
	}
	o := e.offs[i]
	a, z := max(e.lo, o), min(e.hi, o+len(e.s.Params[i].Data))
	if a >= z {
		return nil
	}
	if e.ownGrad {
		return e.gshard[a-e.lo : z-e.lo]
	}
	return e.grads[i][a-o : z-o]
}

// Update scales the gradient and applies AdamW over the arena's [lo, hi)
// (all of it unless sharded) split evenly over the kernel workers (the
// tensors differ in size by 1000×, so splitting each one alone would leave
// the small ones serial).
func (e *cpuEngine) Update(lr float64, clip float32, step int) error {
	if clip != 1 {
		kernels.ParallelFor(len(e.grads), 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				g := e.shardGrad(i)
				for j := range g {
					g[j] *= clip
				}
			}
		})
	}
	sc := e.scalars
	for i, t := range e.infos {
		sc[i] = e.opt.Scalars(lr, step, t)
	}
	params, offs, base := e.s.Params, e.offs, e.lo
	kernels.ParallelFor(len(e.m), 1<<15, func(lo, hi int) {
		lo, hi = lo+base, hi+base // arena positions
		// first tensor overlapping [lo, hi)
		i := sort.Search(len(offs), func(i int) bool { return offs[i]+len(params[i].Data) > lo })
		for ; i < len(params) && offs[i] < hi; i++ {
			p := params[i]
			a, z := max(lo, offs[i]), min(hi, offs[i]+len(p.Data))
			var g []float32
			if e.ownGrad {
				g = e.gshard[a-base : z-base]
			} else {
				g = e.grads[i][a-offs[i] : z-offs[i]]
			}
			sc[i].Apply(p.Data[a-offs[i]:z-offs[i]], g, e.m[a-base:z-base], e.v[a-base:z-base])
		}
	})
	return nil
}

func (e *cpuEngine) Eval(tokens [][]int32) (Parts, error) {
	if err := e.teacherLogits(tokens); err != nil {
		return Parts{}, err
	}
	loss, err := e.s.evalStep(tokens)
	if err != nil {
		return Parts{}, err
	}
	p := e.s.st.parts
	p.Loss = loss
	return p, nil
}

func (e *cpuEngine) Tensors() []model.TensorInfo { return e.infos }

// index finds tensor name and checks the buffers' lengths (nil ones are
// skipped).
func (e *cpuEngine) index(name string, bufs ...[]float32) (int, error) {
	i, ok := e.idx[name]
	if !ok {
		return 0, fmt.Errorf("no trained tensor %q", name)
	}
	n := len(e.s.Params[i].Data)
	for _, b := range bufs {
		if b != nil && len(b) != n {
			return 0, fmt.Errorf("tensor %q has %d elements, buffer %d", name, n, len(b))
		}
	}
	return i, nil
}

func (e *cpuEngine) ReadState(name string, w, m1, m2 []float32) error {
	i, err := e.index(name, w, m1, m2)
	if err != nil {
		return err
	}
	p, o := e.s.Params[i], e.offs[i]
	if e.sharded && (m1 != nil || m2 != nil) {
		return fmt.Errorf("tensor %q: the moments are sharded over the ranks (ReadMoments)", name)
	}
	copy(w, p.Data)
	if m1 != nil {
		copy(m1, e.m[o:o+len(p.Data)])
	}
	if m2 != nil {
		copy(m2, e.v[o:o+len(p.Data)])
	}
	return nil
}

func (e *cpuEngine) WriteState(name string, w, m1, m2 []float32) error {
	i, err := e.index(name, w, m1, m2)
	if err != nil {
		return err
	}
	p, o := e.s.Params[i], e.offs[i]
	if e.sharded && (m1 != nil || m2 != nil) {
		return fmt.Errorf("tensor %q: the moments are sharded over the ranks (WriteMoments)", name)
	}
	if w != nil {
		copy(p.Data, w)
	}
	if m1 != nil {
		copy(e.m[o:o+len(p.Data)], m1)
	}
	if m2 != nil {
		copy(e.v[o:o+len(p.Data)], m2)
	}
	return nil
}

func (e *cpuEngine) Close() error { return e.s.Close() }

// Grads, Weights, Shard, AccumulateShard, ReadMoments and WriteMoments make
// the CPU engine Parallel.

func (e *cpuEngine) Grads() []comm.Buffer {
	if e.acc != nil && !e.ownGrad {
		return []comm.Buffer{comm.Host(e.acc)} // the accumulation arena: one collective
	}
	out := make([]comm.Buffer, len(e.grads))
	for i, g := range e.grads {
		out[i] = comm.Host(g)
	}
	return out
}

func (e *cpuEngine) Weights() []comm.Buffer { return []comm.Buffer{comm.Host(e.s.arena)} }

func (e *cpuEngine) Gathered() error { return nil }

func (e *cpuEngine) Shard(lo, hi int, ownGrad bool) error {
	if lo < 0 || hi > e.s.NumParams() || lo > hi {
		return fmt.Errorf("shard [%d,%d) outside the %d parameters", lo, hi, e.s.NumParams())
	}
	e.lo, e.hi, e.sharded, e.ownGrad = lo, hi, true, ownGrad
	e.m, e.v = make([]float32, hi-lo), make([]float32, hi-lo)
	e.acc, e.gshard = nil, nil
	if ownGrad {
		e.gshard = make([]float32, hi-lo)
	}
	return nil
}

func (e *cpuEngine) AccumulateShard(first bool) error {
	if !e.ownGrad {
		return fmt.Errorf("AccumulateShard without a gradient shard (Shard with ownGrad)")
	}
	for i, g := range e.grads {
		o := e.offs[i]
		a, z := max(e.lo, o), min(e.hi, o+len(g))
		if a >= z {
			continue
		}
		dst := e.gshard[a-e.lo : z-e.lo]
		if first {
			copy(dst, g[a-o:z-o])
		} else {
			kernels.Add(dst, g[a-o:z-o])
		}
	}
	return nil
}

func (e *cpuEngine) momentRange(lo int, m1, m2 []float32) (int, error) {
	n := max(len(m1), len(m2))
	if (m1 != nil && len(m1) != n) || (m2 != nil && len(m2) != n) || lo < e.lo || lo+n > e.hi {
		return 0, fmt.Errorf("moments [%d,%d) outside this rank's shard [%d,%d)", lo, lo+n, e.lo, e.hi)
	}
	return lo - e.lo, nil
}

func (e *cpuEngine) ReadMoments(lo int, m1, m2 []float32) error {
	o, err := e.momentRange(lo, m1, m2)
	if err != nil {
		return err
	}
	copy(m1, e.m[o:])
	copy(m2, e.v[o:])
	return nil
}

func (e *cpuEngine) WriteMoments(lo int, m1, m2 []float32) error {
	o, err := e.momentRange(lo, m1, m2)
	if err != nil {
		return err
	}
	copy(e.m[o:], m1)
	copy(e.v[o:], m2)
	return nil
}
