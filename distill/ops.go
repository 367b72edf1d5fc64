package distill

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kop is the one gorgonia.Op type behind every custom op of the training
// graph. Each instance owns its output buffer (allocated once, when the
// graph is built) and calls a kernel from model/kernels in Do; backward ops
// are kop instances too, created by the forward op's SymDiff. Ops never
// allocate per step.
//
// Buffer discipline (gorgonia's register allocator may let a built-in Add
// overwrite a dead value in place): a kop only reads other ops' data through
// its graph inputs; state saved for the backward pass (norm statistics,
// attention probabilities, rotated q/k) lives in private buffers that are
// never returned as a node value.
type kop struct {
	name  string
	id    uint64
	arity int
	shape tensor.Shape // output shape; empty = scalar
	out   *tensor.Dense
	// do computes the op into out (or the scalar it returns).
	do func(in []G.Value) (float32, error)
	// diff builds the gradient nodes for each input (nil where not
	// differentiable); nil for ops that are not differentiated (backward
	// ops).
	diff    func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error)
	diffWRT []bool
	scalar  *G.F32
}

var opIDs atomic.Uint64

// opTiming, when set (tests and profiling only), receives each op's run time.
var opTiming func(name string, d time.Duration)

func newOp(name string, arity int, shape ...int) *kop {
	o := &kop{name: name, id: opIDs.Add(1), arity: arity, shape: tensor.Shape(shape)}
	if len(shape) > 0 {
		n := 1
		for _, d := range shape {
			n *= d
		}
		o.out = tensor.New(tensor.WithBacking(make([]float32, n)), tensor.WithShape(shape...))
	} else {
		o.scalar = G.NewF32(0)
	}
	return o
}

// data is the op's output buffer.
func (o *kop) data() []float32 { return o.out.Data().([]float32) }

func (o *kop) Arity() int { return o.arity }

func (o *kop) Type() hm.Type {
	ts := make([]hm.Type, 0, o.arity+1)
	for i := 0; i < o.arity; i++ {
		ts = append(ts, hm.TypeVariable(rune(0x3b1+i))) // α, β, …: gorgonia reserves 'b' for the result
	}
	if len(o.shape) == 0 {
		ts = append(ts, tensor.Float32)
	} else {
		ts = append(ts, G.TensorType{Dims: len(o.shape), Of: tensor.Float32})
	}
	return hm.NewFnType(ts...)
}

func (o *kop) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.shape.Clone(), nil }

func (o *kop) Do(in ...G.Value) (G.Value, error) {
	if len(in) != o.arity {
		return nil, fmt.Errorf("%s: got %d inputs, want %d", o.name, len(in), o.arity)
	}
	var t0 time.Time
	if opTiming != nil {
		t0 = time.Now()
	}
	v, err := o.do(in)
	if opTiming != nil {
		opTiming(o.name, time.Since(t0))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	if o.out == nil {
		*o.scalar = G.F32(v)
		return o.scalar, nil
	}
	return o.out, nil
}

func (o *kop) ReturnsPtr() bool     { return false }
func (o *kop) CallsExtern() bool    { return false }
func (o *kop) OverwritesInput() int { return -1 }
func (o *kop) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s#%d", o.name, o.id)
}
func (o *kop) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}
func (o *kop) String() string { return o.name }

func (o *kop) DiffWRT(n int) []bool {
	if o.diff == nil {
		return make([]bool, n)
	}
	return o.diffWRT
}

func (o *kop) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if o.diff == nil {
		return nil, fmt.Errorf("%s is not differentiable", o.name)
	}
	return o.diff(inputs, output, grad)
}

// f32 extracts a float32 slice from a node value.
func f32(v G.Value) []float32 {
	switch t := v.(type) {
	case *tensor.Dense:
		return t.Data().([]float32)
	case tensor.Tensor:
		return t.Data().([]float32)
	}
	panic(fmt.Sprintf("distill: unexpected value %T", v))
}

// scalarOf reads a scalar gradient value (1 when Grad starts the chain).
func scalarOf(v G.Value) float32 {
	switch t := v.(type) {
	case *G.F32:
		return float32(*t)
	case *G.F64:
		return float32(*t)
	case tensor.Tensor:
		if d, ok := t.Data().(float32); ok {
			return d
		}
		if d, ok := t.Data().([]float32); ok && len(d) == 1 {
			return d[0]
		}
	}
	return 1
}

func apply(o *kop, in ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(o, in...)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", o.name, err)
	}
	return n, nil
}
