package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/minitron-dev/minitron/model"
)

// A GGUF reader for the tests: it parses a whole file and checks what
// llama.cpp's gguf.cpp checks (magic, version, types, string and array
// lengths within the file, tensor dims, offsets aligned and in range), plus
// that the tensors tile the data section in order with only alignment
// padding between them, as the writer lays them out.

type ggufFile struct {
	version  uint32
	kv       map[string]ggufKV
	keys     []string // in file order
	tensors  []ggufTensorInfo
	byName   map[string]int
	align    int64
	dataOff  int64
	fileSize int64
	raw      []byte
}

type ggufKV struct {
	typ, elem uint32
	val       any // uint32, int32, float32, bool, string, uint64, ...; arrays as slices
}

type ggufTensorInfo struct {
	name string
	dims []int64 // innermost first, as stored
	typ  uint32
	off  int64 // relative to dataOff
}

type ggufReader struct {
	b   []byte
	pos int
}

var errShort = errors.New("truncated")

func (r *ggufReader) need(n uint64) error {
	if n > uint64(len(r.b)-r.pos) {
		return errShort
	}
	return nil
}

func (r *ggufReader) u8() (uint8, error) {
	if err := r.need(1); err != nil {
		return 0, err
	}
	r.pos++
	return r.b[r.pos-1], nil
}

func (r *ggufReader) u16() (uint16, error) {
	if err := r.need(2); err != nil {
		return 0, err
	}
	r.pos += 2
	return binary.LittleEndian.Uint16(r.b[r.pos-2:]), nil
}

func (r *ggufReader) u32() (uint32, error) {
	if err := r.need(4); err != nil {
		return 0, err
	}
	r.pos += 4
	return binary.LittleEndian.Uint32(r.b[r.pos-4:]), nil
}

func (r *ggufReader) u64() (uint64, error) {
	if err := r.need(8); err != nil {
		return 0, err
	}
	r.pos += 8
	return binary.LittleEndian.Uint64(r.b[r.pos-8:]), nil
}

func (r *ggufReader) str() (string, error) {
	n, err := r.u64()
	if err != nil {
		return "", err
	}
	if err := r.need(n); err != nil {
		return "", fmt.Errorf("string of %d bytes: %w", n, err)
	}
	r.pos += int(n)
	return string(r.b[r.pos-int(n) : r.pos]), nil
}

// scalar reads one value of a non-array type.
func (r *ggufReader) scalar(typ uint32) (any, error) {
	switch typ {
	case gtUint8:
		return r.u8()
	case gtInt8:
		v, err := r.u8()
		return int8(v), err
	case gtUint16:
		return r.u16()
	case gtInt16:
		v, err := r.u16()
		return int16(v), err
	case gtUint32:
		return r.u32()
	case gtInt32:
		v, err := r.u32()
		return int32(v), err
	case gtFloat32:
		v, err := r.u32()
		return math.Float32frombits(v), err
	case gtBool:
		v, err := r.u8()
		if err == nil && v > 1 {
			err = fmt.Errorf("bool value %d", v)
		}
		return v == 1, err
	case gtString:
		return r.str()
	case gtUint64:
		return r.u64()
	case gtInt64:
		v, err := r.u64()
		return int64(v), err
	case gtFloat64:
		v, err := r.u64()
		return math.Float64frombits(v), err
	}
	return nil, fmt.Errorf("unknown value type %d", typ)
}

func parseGGUF(b []byte) (*ggufFile, error) {
	r := &ggufReader{b: b}
	if len(b) < 4 || string(b[:4]) != ggufMagic {
		return nil, errors.New("bad magic")
	}
	r.pos = 4
	f := &ggufFile{kv: map[string]ggufKV{}, byName: map[string]int{}, fileSize: int64(len(b)), raw: b}
	var err error
	if f.version, err = r.u32(); err != nil {
		return nil, err
	}
	if f.version != 3 {
		return nil, fmt.Errorf("version %d, want 3", f.version)
	}
	nt, err := r.u64()
	if err != nil {
		return nil, err
	}
	nkv, err := r.u64()
	if err != nil {
		return nil, err
	}
	// Every kv and tensor info takes at least 8+4 bytes: bound the counts
	// by the file before allocating.
	if nt > uint64(len(b))/12 || nkv > uint64(len(b))/12 {
		return nil, fmt.Errorf("counts %d tensors, %d kvs exceed the file", nt, nkv)
	}
	for range nkv {
		key, err := r.str()
		if err != nil {
			return nil, fmt.Errorf("kv key: %w", err)
		}
		if _, dup := f.kv[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		typ, err := r.u32()
		if err != nil {
			return nil, err
		}
		e := ggufKV{typ: typ}
		if typ == gtArray {
			if e.elem, err = r.u32(); err != nil {
				return nil, err
			}
			if e.elem == gtArray {
				return nil, fmt.Errorf("%s: nested arrays", key)
			}
			n, err := r.u64()
			if err != nil {
				return nil, err
			}
			if n > uint64(len(b)-r.pos) {
				return nil, fmt.Errorf("%s: array of %d exceeds the file", key, n)
			}
			vals := make([]any, 0, n)
			for range n {
				v, err := r.scalar(e.elem)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", key, err)
				}
				vals = append(vals, v)
			}
			e.val = vals
		} else if e.val, err = r.scalar(typ); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		f.kv[key] = e
		f.keys = append(f.keys, key)
	}
	f.align = ggufAlignment
	if a, ok := f.kv["general.alignment"]; ok {
		v, isU32 := a.val.(uint32)
		if !isU32 || v == 0 || v&(v-1) != 0 {
			return nil, fmt.Errorf("general.alignment %v is not a power-of-two u32", a.val)
		}
		f.align = int64(v)
	}
	for range nt {
		var t ggufTensorInfo
		if t.name, err = r.str(); err != nil {
			return nil, fmt.Errorf("tensor name: %w", err)
		}
		if len(t.name) >= 64 {
			return nil, fmt.Errorf("tensor name %q is longer than ggml's 63 bytes", t.name)
		}
		if _, dup := f.byName[t.name]; dup {
			return nil, fmt.Errorf("duplicate tensor %q", t.name)
		}
		nd, err := r.u32()
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > 4 {
			return nil, fmt.Errorf("%s: %d dims", t.name, nd)
		}
		for range nd {
			d, err := r.u64()
			if err != nil {
				return nil, err
			}
			if d == 0 || d > 1<<40 {
				return nil, fmt.Errorf("%s: dim %d", t.name, d)
			}
			t.dims = append(t.dims, int64(d))
		}
		// Every element takes at least a byte: a product over the file's
		// size is corrupt (and guards the products against overflow).
		for prod, i := int64(1), 0; i < len(t.dims); i++ {
			if prod *= t.dims[i]; prod > int64(len(b)) {
				return nil, fmt.Errorf("%s: %v elements exceed the file", t.name, t.dims)
			}
		}
		if t.typ, err = r.u32(); err != nil {
			return nil, err
		}
		if ggmlRowBytes(t.typ, 1) < 0 && t.typ != ggmlQ8_0 {
			return nil, fmt.Errorf("%s: unknown type %d", t.name, t.typ)
		}
		if t.typ == ggmlQ8_0 && t.dims[0]%q8Block != 0 {
			return nil, fmt.Errorf("%s: Q8_0 rows of %d are not whole blocks", t.name, t.dims[0])
		}
		off, err := r.u64()
		if err != nil {
			return nil, err
		}
		if off > uint64(len(b)) {
			return nil, fmt.Errorf("%s: offset %d beyond the file", t.name, off)
		}
		t.off = int64(off)
		if t.off%f.align != 0 {
			return nil, fmt.Errorf("%s: offset %d not aligned to %d", t.name, t.off, f.align)
		}
		f.byName[t.name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
	}
	f.dataOff = (int64(r.pos) + f.align - 1) / f.align * f.align
	// Padding before the data is zeros.
	if f.dataOff > int64(len(b)) {
		return nil, fmt.Errorf("data section at %d beyond the file", f.dataOff)
	}
	for _, c := range b[r.pos:f.dataOff] {
		if c != 0 {
			return nil, errors.New("non-zero padding before the data")
		}
	}
	var next int64
	for _, t := range f.tensors {
		if t.off != next {
			return nil, fmt.Errorf("%s at %d, expected %d (tensors must follow one another)", t.name, t.off, next)
		}
		n := t.bytes()
		if n < 0 || f.dataOff+t.off+n > int64(len(b)) {
			return nil, fmt.Errorf("%s: %d bytes at %d run past the file", t.name, n, t.off)
		}
		next = (t.off + n + f.align - 1) / f.align * f.align
	}
	if f.dataOff+next != int64(len(b)) {
		return nil, fmt.Errorf("file is %d bytes, its tensors end at %d", len(b), f.dataOff+next)
	}
	return f, nil
}

func (t ggufTensorInfo) elems() int64 {
	n := int64(1)
	for _, d := range t.dims {
		n *= d
	}
	return n
}

func (t ggufTensorInfo) bytes() int64 { return ggmlRowBytes(t.typ, t.elems()) }

// shape is the HF-order shape (outermost first).
func (t ggufTensorInfo) shape() []int {
	s := make([]int, len(t.dims))
	for i, d := range t.dims {
		s[len(s)-1-i] = int(d)
	}
	return s
}

// f32 decodes a tensor's data.
func (f *ggufFile) f32(name string) ([]float32, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %s", name)
	}
	t := f.tensors[i]
	raw := f.raw[f.dataOff+t.off : f.dataOff+t.off+t.bytes()]
	out := make([]float32, t.elems())
	switch t.typ {
	case ggmlF32:
		return out, model.DecodeF32(model.F32, raw, out)
	case ggmlF16:
		return out, model.DecodeF32(model.F16, raw, out)
	case ggmlBF16:
		return out, model.DecodeF32(model.BF16, raw, out)
	case ggmlQ8_0:
		for b := range len(out) / q8Block {
			blk := raw[b*(2+q8Block):]
			d := make([]float32, 1)
			model.F16ToF32(blk[:2], d)
			for i := range q8Block {
				out[b*q8Block+i] = d[0] * float32(int8(blk[2+i]))
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: type %d", name, t.typ)
}

func (f *ggufFile) u32(key string) (uint32, error) {
	e, ok := f.kv[key]
	if !ok {
		return 0, fmt.Errorf("no key %s", key)
	}
	v, ok := e.val.(uint32)
	if !ok || e.typ != gtUint32 {
		return 0, fmt.Errorf("%s is type %d, want u32", key, e.typ)
	}
	return v, nil
}

func (f *ggufFile) str(key string) string {
	s, _ := f.kv[key].val.(string)
	return s
}

// strings returns an array of strings.
func (f *ggufFile) strs(key string) []string {
	e := f.kv[key]
	if e.typ != gtArray || e.elem != gtString {
		return nil
	}
	out := make([]string, 0, len(e.val.([]any)))
	for _, v := range e.val.([]any) {
		out = append(out, v.(string))
	}
	return out
}
