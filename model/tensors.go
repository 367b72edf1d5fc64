package model

// DType is a tensor element type as named in safetensors headers.
type DType string

const (
	F32  DType = "F32"
	BF16 DType = "BF16"
	F16  DType = "F16"
)

// Size is the element size in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

// TensorInfo describes one stored tensor.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
}

// NumElements is the product of the shape.
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// TensorSource gives access to named tensors, converting them to float32 on
// read. A memory-mapped checkpoint and an in-memory map both implement it, so
// the forward pass does not care where weights live.
type TensorSource interface {
	// Info returns the tensor's dtype and shape, false when absent.
	Info(name string) (TensorInfo, bool)
	// Names lists every tensor, sorted.
	Names() []string
	// ReadF32 converts the tensor into dst, which must have NumElements
	// entries.
	ReadF32(name string, dst []float32) error
}
