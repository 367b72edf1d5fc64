package export

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/minitron-dev/minitron/model"
)

// GGUF v3 as llama.cpp's ggml/gguf.cpp and gguf-py read it: the magic
// "GGUF", u32 version, u64 tensor count, u64 key/value count, the typed
// key/values, the tensor infos (name, u32 n_dims, u64 dims innermost first,
// u32 ggml type, u64 offset into the data section), padding to the
// alignment, then the tensor data, each tensor starting at a multiple of the
// alignment. Everything is little-endian; strings are a u64 length and bytes.

const (
	ggufMagic     = "GGUF"
	ggufVersion   = 3
	ggufAlignment = 32 // llama.cpp's default; written as general.alignment too
)

// GGUF metadata value types (gguf-py's GGUFValueType).
const (
	gtUint8   uint32 = 0
	gtInt8    uint32 = 1
	gtUint16  uint32 = 2
	gtInt16   uint32 = 3
	gtUint32  uint32 = 4
	gtInt32   uint32 = 5
	gtFloat32 uint32 = 6
	gtBool    uint32 = 7
	gtString  uint32 = 8
	gtArray   uint32 = 9
	gtUint64  uint32 = 10
	gtInt64   uint32 = 11
	gtFloat64 uint32 = 12
)

// ggml tensor types written here (ggml.h's enum ggml_type).
const (
	ggmlF32  uint32 = 0
	ggmlF16  uint32 = 1
	ggmlQ8_0 uint32 = 8
	ggmlBF16 uint32 = 30
)

// q8Block is ggml's QK8_0: Q8_0 stores blocks of 32 int8s after an f16 scale.
const q8Block = 32

// ggmlTypeName names a tensor type for messages and the reader.
func ggmlTypeName(t uint32) string {
	switch t {
	case ggmlF32:
		return "F32"
	case ggmlF16:
		return "F16"
	case ggmlQ8_0:
		return "Q8_0"
	case ggmlBF16:
		return "BF16"
	}
	return fmt.Sprintf("type %d", t)
}

// ggmlRowBytes is the size of n elements of type t (n a multiple of the
// block size for Q8_0).
func ggmlRowBytes(t uint32, n int64) int64 {
	switch t {
	case ggmlF32:
		return 4 * n
	case ggmlF16, ggmlBF16:
		return 2 * n
	case ggmlQ8_0:
		return n / q8Block * (2 + q8Block)
	}
	return -1
}

// kv is one metadata entry; val is a Go value of the type typ says (for
// arrays, elem names the element type and val is a slice).
type kv struct {
	key       string
	typ, elem uint32
	val       any
}

func kvString(k, v string) kv      { return kv{key: k, typ: gtString, val: v} }
func kvU32(k string, v int) kv     { return kv{key: k, typ: gtUint32, val: uint32(v)} }
func kvF32(k string, v float64) kv { return kv{key: k, typ: gtFloat32, val: float32(v)} }
func kvBool(k string, v bool) kv   { return kv{key: k, typ: gtBool, val: v} }
func kvStrings(k string, v []string) kv {
	return kv{key: k, typ: gtArray, elem: gtString, val: v}
}
func kvF32s(k string, v []float32) kv { return kv{key: k, typ: gtArray, elem: gtFloat32, val: v} }
func kvI32s(k string, v []int32) kv   { return kv{key: k, typ: gtArray, elem: gtInt32, val: v} }

// ggufTensor is one tensor to write: its GGUF name, HF-order shape (rows
// first; written reversed, as ggml counts dims innermost first), type, and
// how to produce its f32 values in HF row-major order: read fills dst with
// elements [off, off+len(dst)), a whole number of units (0: the whole
// tensor at once), so big tensors stream in chunks.
type ggufTensor struct {
	name  string
	shape []int
	typ   uint32
	unit  int
	read  func(off int, dst []float32) error
}

// ggufChunkElems bounds the f32 staging buffer of a tensor being written.
var ggufChunkElems = 1 << 20 // a var: tests make it small to exercise chunking

func (t *ggufTensor) elems() int64 {
	n := int64(1)
	for _, d := range t.shape {
		n *= int64(d)
	}
	return n
}

func (t *ggufTensor) bytes() int64 { return ggmlRowBytes(t.typ, t.elems()) }

func align(n int64) int64 { return (n + ggufAlignment - 1) / ggufAlignment * ggufAlignment }

// ggufWriter counts what it writes so padding can be computed.
type ggufWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (g *ggufWriter) bytes(b []byte) {
	if g.err != nil {
		return
	}
	var k int
	k, g.err = g.w.Write(b)
	g.n += int64(k)
}

func (g *ggufWriter) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	g.bytes(b[:])
}

func (g *ggufWriter) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	g.bytes(b[:])
}

func (g *ggufWriter) str(s string) {
	g.u64(uint64(len(s)))
	g.bytes([]byte(s))
}

func (g *ggufWriter) pad() {
	if p := align(g.n) - g.n; p > 0 {
		g.bytes(make([]byte, p))
	}
}

func (g *ggufWriter) value(typ uint32, v any) {
	switch typ {
	case gtUint32:
		g.u32(v.(uint32))
	case gtInt32:
		g.u32(uint32(v.(int32)))
	case gtFloat32:
		g.u32(math.Float32bits(v.(float32)))
	case gtBool:
		if v.(bool) {
			g.bytes([]byte{1})
		} else {
			g.bytes([]byte{0})
		}
	case gtString:
		g.str(v.(string))
	default:
		g.err = fmt.Errorf("gguf: no writer for value type %d", typ)
	}
}

func (g *ggufWriter) kv(e kv) {
	g.str(e.key)
	g.u32(e.typ)
	if e.typ != gtArray {
		g.value(e.typ, e.val)
		return
	}
	g.u32(e.elem)
	switch a := e.val.(type) {
	case []string:
		g.u64(uint64(len(a)))
		for _, s := range a {
			g.str(s)
		}
	case []float32:
		g.u64(uint64(len(a)))
		for _, f := range a {
			g.u32(math.Float32bits(f))
		}
	case []int32:
		g.u64(uint64(len(a)))
		for _, x := range a {
			g.u32(uint32(x))
		}
	default:
		g.err = fmt.Errorf("gguf: %s: no writer for %T", e.key, e.val)
	}
}

// writeGGUF writes the whole file to w, reading one tensor at a time;
// stop is checked between tensors (cancellation).
func writeGGUF(w io.Writer, kvs []kv, tensors []*ggufTensor, stop func() error) (int64, error) {
	g := &ggufWriter{w: bufio.NewWriterSize(w, 1<<20)}
	g.bytes([]byte(ggufMagic))
	g.u32(ggufVersion)
	g.u64(uint64(len(tensors)))
	g.u64(uint64(len(kvs)))
	for _, e := range kvs {
		g.kv(e)
	}
	var off int64
	for _, t := range tensors {
		g.str(t.name)
		g.u32(uint32(len(t.shape)))
		for i := len(t.shape) - 1; i >= 0; i-- {
			g.u64(uint64(t.shape[i]))
		}
		g.u32(t.typ)
		g.u64(uint64(off))
		off = align(off + t.bytes())
	}
	g.pad()
	var f32 []float32
	var raw []byte
	for _, t := range tensors {
		if g.err != nil {
			break
		}
		if err := stop(); err != nil {
			return g.n, err
		}
		n := int(t.elems())
		chunk := n
		if t.unit > 0 {
			chunk = max(t.unit, ggufChunkElems/t.unit*t.unit)
		}
		chunk = min(chunk, n)
		if cap(f32) < chunk {
			f32 = make([]float32, chunk)
		}
		for off := 0; off < n && g.err == nil; off += chunk {
			m := min(chunk, n-off)
			buf := f32[:m]
			if err := t.read(off, buf); err != nil {
				return g.n, fmt.Errorf("%s: %w", t.name, err)
			}
			nb := int(ggmlRowBytes(t.typ, int64(m)))
			if cap(raw) < nb {
				raw = make([]byte, nb)
			}
			if err := encodeGGML(t.typ, buf, raw[:nb]); err != nil {
				return g.n, fmt.Errorf("%s: %w", t.name, err)
			}
			g.bytes(raw[:nb])
		}
		g.pad()
	}
	if g.err == nil {
		g.err = g.w.Flush()
	}
	return g.n, g.err
}

// encodeGGML stores src as type t in dst.
func encodeGGML(t uint32, src []float32, dst []byte) error {
	switch t {
	case ggmlF32:
		return model.EncodeF32(model.F32, src, dst)
	case ggmlF16:
		return model.EncodeF32(model.F16, src, dst)
	case ggmlBF16:
		return model.EncodeF32(model.BF16, src, dst)
	case ggmlQ8_0:
		quantizeQ8_0(src, dst)
		return nil
	}
	return fmt.Errorf("no encoder for ggml type %d", t)
}

// quantizeQ8_0 is ggml's quantize_row_q8_0_ref: per block of 32, the
// scale d = max|x|/127 stored as f16, and q = round(x/d) (half away from
// zero, as C's roundf), computed with the f32 inverse scale.
func quantizeQ8_0(src []float32, dst []byte) {
	for b := 0; b*q8Block < len(src); b++ {
		x := src[b*q8Block : (b+1)*q8Block]
		out := dst[b*(2+q8Block) : (b+1)*(2+q8Block)]
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out, model.F16FromF32(d))
		for i, v := range x {
			out[2+i] = byte(int8(math.Round(float64(v * id))))
		}
	}
}
