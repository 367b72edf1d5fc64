package model

import (
	"fmt"
	"slices"
	"sort"
	"sync"
)

// MemSource is an in-memory TensorSource of float32 tensors, for tests and
// for pruning output. Info reports each tensor's DType as given to Set (the
// dtype it should be written with); the data is always float32. It is safe
// for concurrent use.
type MemSource struct {
	mu      sync.RWMutex
	tensors map[string]memTensor
}

type memTensor struct {
	info TensorInfo
	data []float32
}

// NewMemSource returns an empty MemSource.
func NewMemSource() *MemSource { return &MemSource{tensors: map[string]memTensor{}} }

// Set stores data (not copied) under info.Name; len(data) must equal
// info.NumElements(). An empty DType means F32.
func (m *MemSource) Set(info TensorInfo, data []float32) error {
	if info.Name == "" {
		return fmt.Errorf("memsource: tensor needs a name")
	}
	for _, d := range info.Shape {
		if d < 0 {
			return fmt.Errorf("memsource: tensor %q: negative dimension in shape %v", info.Name, info.Shape)
		}
	}
	if info.NumElements() != len(data) {
		return fmt.Errorf("memsource: tensor %q: shape %v needs %d values, got %d", info.Name, info.Shape, info.NumElements(), len(data))
	}
	if info.DType == "" {
		info.DType = F32
	}
	if info.DType.Size() == 0 {
		return fmt.Errorf("memsource: tensor %q: unsupported dtype %q", info.Name, info.DType)
	}
	info.Shape = slices.Clone(info.Shape)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tensors == nil {
		m.tensors = map[string]memTensor{}
	}
	m.tensors[info.Name] = memTensor{info, data}
	return nil
}

// SetF32 is Set with dtype F32.
func (m *MemSource) SetF32(name string, shape []int, data []float32) error {
	return m.Set(TensorInfo{Name: name, DType: F32, Shape: shape}, data)
}

// Get returns the stored slice (not a copy) and its info.
func (m *MemSource) Get(name string) ([]float32, TensorInfo, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tensors[name]
	return t.data, t.info, ok
}

// Delete removes a tensor.
func (m *MemSource) Delete(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tensors, name)
}

// Len is the number of tensors.
func (m *MemSource) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.tensors)
}

// Info implements TensorSource.
func (m *MemSource) Info(name string) (TensorInfo, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	t.info.Shape = slices.Clone(t.info.Shape)
	return t.info, true
}

// Names implements TensorSource (sorted).
func (m *MemSource) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.tensors))
	for n := range m.tensors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ReadF32 implements TensorSource (copies into dst).
func (m *MemSource) ReadF32(name string, dst []float32) error {
	data, _, ok := m.Get(name)
	if !ok {
		return fmt.Errorf("memsource: no tensor %q", name)
	}
	if len(dst) != len(data) {
		return fmt.Errorf("memsource: tensor %q has %d elements, dst has %d", name, len(data), len(dst))
	}
	copy(dst, data)
	return nil
}

// ReadF32Range implements RangeReader.
func (m *MemSource) ReadF32Range(name string, off int, dst []float32) error {
	data, _, ok := m.Get(name)
	if !ok {
		return fmt.Errorf("memsource: no tensor %q", name)
	}
	if off < 0 || off > len(data) || len(dst) > len(data)-off {
		return fmt.Errorf("memsource: tensor %q: range [%d, %d) outside its %d elements", name, off, off+len(dst), len(data))
	}
	copy(dst, data[off:])
	return nil
}

// LoadMem reads every tensor of src into a new MemSource (keeping each
// tensor's dtype in its info). Meant for small models.
func LoadMem(src TensorSource) (*MemSource, error) {
	m := NewMemSource()
	for _, n := range src.Names() {
		info, ok := src.Info(n)
		if !ok {
			return nil, fmt.Errorf("tensor %q listed but has no info", n)
		}
		buf := make([]float32, info.NumElements())
		if err := src.ReadF32(n, buf); err != nil {
			return nil, err
		}
		if err := m.Set(info, buf); err != nil {
			return nil, err
		}
	}
	return m, nil
}
