package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"sort"
	"strings"
)

// MaxHeaderBytes caps the JSON header of a safetensors file. Real headers are
// a few hundred KB even for 15B models; the cap stops a corrupt length from
// making us allocate gigabytes.
const MaxHeaderBytes = 100 << 20

// MetadataKey is the reserved header key holding string metadata.
const MetadataKey = "__metadata__"

// SafetensorsHeader is a parsed and validated safetensors header.
type SafetensorsHeader struct {
	// HeaderLen is N, the JSON length; tensor data starts at byte 8+N.
	HeaderLen int64
	// Metadata is the optional __metadata__ string map (nil when absent).
	Metadata map[string]string
	// Tensors in file order (ascending data offset).
	Tensors []SafetensorsEntry
}

// SafetensorsEntry is one tensor of a header; Begin/End are absolute byte
// offsets into the file (data_offsets + 8 + N).
type SafetensorsEntry struct {
	TensorInfo
	Begin, End int64
}

// ParseSafetensorsHeader parses and fully validates the header of a
// safetensors file whose first bytes are b (at least the first 8+N bytes; more
// is fine) and whose total size is fileSize: the length is within the file and
// under MaxHeaderBytes, the JSON is an object of tensor entries plus an
// optional string-map __metadata__, every dtype is known, every byte size
// matches its shape, and the tensors tile the data area exactly (no gap, no
// overlap, ending at the end of the file). It never panics on any input.
func ParseSafetensorsHeader(b []byte, fileSize int64) (*SafetensorsHeader, error) {
	if fileSize < 8 || len(b) < 8 {
		return nil, fmt.Errorf("file too small for a safetensors header (%d bytes)", fileSize)
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderBytes {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte cap (corrupt or not a safetensors file)", n, MaxHeaderBytes)
	}
	if int64(n) > fileSize-8 {
		return nil, fmt.Errorf("header length %d is beyond the end of the file (%d bytes)", n, fileSize)
	}
	if int64(len(b)) < 8+int64(n) {
		return nil, fmt.Errorf("header truncated: need %d bytes, have %d", 8+n, len(b))
	}
	js := b[8 : 8+n]
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %w", err)
	}
	h := &SafetensorsHeader{HeaderLen: int64(n)}
	dataStart := 8 + int64(n)
	dataLen := fileSize - dataStart
	for name, v := range raw {
		if name == MetadataKey {
			var md map[string]string
			if err := json.Unmarshal(v, &md); err != nil {
				return nil, fmt.Errorf("%s must map strings to strings: %w", MetadataKey, err)
			}
			h.Metadata = md
			continue
		}
		var e struct {
			DType       *string  `json:"dtype"`
			Shape       *[]int64 `json:"shape"`
			DataOffsets *[]int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("tensor %q: bad entry: %w", name, err)
		}
		if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
			return nil, fmt.Errorf("tensor %q: entry needs dtype, shape and data_offsets", name)
		}
		dt := DType(*e.DType)
		if dt.Size() == 0 {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q (want F32, BF16 or F16)", name, *e.DType)
		}
		if len(*e.DataOffsets) != 2 {
			return nil, fmt.Errorf("tensor %q: data_offsets must be [begin, end], got %d values", name, len(*e.DataOffsets))
		}
		begin, end := (*e.DataOffsets)[0], (*e.DataOffsets)[1]
		if begin < 0 || end < begin || end > dataLen {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] outside the %d-byte data area", name, begin, end, dataLen)
		}
		shape := make([]int, len(*e.Shape))
		empty := false
		for i, d := range *e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q: negative dimension %d in shape %v", name, d, *e.Shape)
			}
			empty = empty || d == 0
			shape[i] = int(d)
			if int64(shape[i]) != d {
				return nil, fmt.Errorf("tensor %q: shape %v is larger than the file", name, *e.Shape)
			}
		}
		elems := int64(0)
		if !empty {
			// The byte size must fit in the data area, so any product past
			// it is an error; checking each step keeps it from overflowing.
			elems = 1
			for _, d := range *e.Shape {
				hi, lo := bits.Mul64(uint64(elems), uint64(d))
				if hi != 0 || lo > uint64(dataLen) {
					return nil, fmt.Errorf("tensor %q: shape %v is larger than the file", name, *e.Shape)
				}
				elems = int64(lo)
			}
		}
		if want := elems * int64(dt.Size()); want != end-begin {
			return nil, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes but data_offsets [%d, %d] span %d", name, *e.Shape, dt, want, begin, end, end-begin)
		}
		h.Tensors = append(h.Tensors, SafetensorsEntry{
			TensorInfo: TensorInfo{Name: name, DType: dt, Shape: shape},
			Begin:      dataStart + begin, End: dataStart + end,
		})
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	pos := dataStart
	var prev string
	for _, t := range h.Tensors {
		switch {
		case t.Begin < pos:
			return nil, fmt.Errorf("tensor %q (data_offsets [%d, %d]) overlaps tensor %q", t.Name, t.Begin-dataStart, t.End-dataStart, prev)
		case t.Begin > pos:
			return nil, fmt.Errorf("gap in data: bytes [%d, %d) belong to no tensor (before tensor %q)", pos-dataStart, t.Begin-dataStart, t.Name)
		}
		pos = t.End
		prev = t.Name
	}
	if pos != fileSize {
		return nil, fmt.Errorf("gap in data: tensors end at data offset %d but the data area is %d bytes (trailing bytes or truncated header)", pos-dataStart, dataLen)
	}
	return h, nil
}

// SafetensorsFile is a memory-mapped, validated safetensors file. It is safe
// for concurrent readers. It implements TensorSource.
type SafetensorsFile struct {
	path    string
	data    []byte // the whole file
	release func() error
	header  *SafetensorsHeader
	byName  map[string]*SafetensorsEntry
	names   []string
}

// OpenSafetensors maps path read-only and validates its header. Errors name
// the file. The file must not be truncated or rewritten in place while open
// (reads would fault); SaveCheckpoint and WriteSafetensors only ever replace
// files by rename, so re-saving over an open checkpoint is safe.
func OpenSafetensors(path string) (*SafetensorsFile, error) {
	data, release, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	h, err := ParseSafetensorsHeader(data, int64(len(data)))
	if err != nil {
		release()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := &SafetensorsFile{path: path, data: data, release: release, header: h,
		byName: make(map[string]*SafetensorsEntry, len(h.Tensors))}
	for i := range h.Tensors {
		t := &h.Tensors[i]
		f.byName[t.Name] = t
		f.names = append(f.names, t.Name)
	}
	sort.Strings(f.names)
	return f, nil
}

// Path is the file's path.
func (f *SafetensorsFile) Path() string { return f.path }

// Size is the file size in bytes.
func (f *SafetensorsFile) Size() int64 { return int64(len(f.data)) }

// Header is the parsed header (do not modify).
func (f *SafetensorsFile) Header() *SafetensorsHeader { return f.header }

// Metadata is the __metadata__ map, nil when absent.
func (f *SafetensorsFile) Metadata() map[string]string { return f.header.Metadata }

// Close unmaps the file. Slices returned by Raw become invalid.
func (f *SafetensorsFile) Close() error {
	if f.release == nil {
		return nil
	}
	err := f.release()
	f.release, f.data = nil, nil
	return err
}

// Info implements TensorSource.
func (f *SafetensorsFile) Info(name string) (TensorInfo, bool) {
	e, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return e.TensorInfo, true
}

// Names implements TensorSource (sorted).
func (f *SafetensorsFile) Names() []string { return append([]string(nil), f.names...) }

// Raw returns the tensor's stored little-endian bytes without copying; the
// slice aliases the read-only mapping (writing to it faults) and is valid
// until Close.
func (f *SafetensorsFile) Raw(name string) ([]byte, TensorInfo, error) {
	e, ok := f.byName[name]
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("%s: no tensor %q", f.path, name)
	}
	if f.data == nil {
		return nil, TensorInfo{}, fmt.Errorf("%s: file is closed", f.path)
	}
	return f.data[e.Begin:e.End:e.End], e.TensorInfo, nil
}

// ReadF32 implements TensorSource: converts the whole tensor into dst.
func (f *SafetensorsFile) ReadF32(name string, dst []float32) error {
	raw, info, err := f.Raw(name)
	if err != nil {
		return err
	}
	if n := info.NumElements(); len(dst) != n {
		return fmt.Errorf("%s: tensor %q has %d elements, dst has %d", f.path, name, n, len(dst))
	}
	return DecodeF32(info.DType, raw, dst)
}

// ReadF32Range converts elements [off, off+len(dst)) of the flattened tensor
// into dst, so huge tensors can be streamed in pieces.
func (f *SafetensorsFile) ReadF32Range(name string, off int, dst []float32) error {
	raw, info, err := f.Raw(name)
	if err != nil {
		return err
	}
	n := info.NumElements()
	if off < 0 || off > n || len(dst) > n-off {
		return fmt.Errorf("%s: tensor %q: range [%d, %d) outside its %d elements", f.path, name, off, off+len(dst), n)
	}
	sz := info.DType.Size()
	return DecodeF32(info.DType, raw[off*sz:(off+len(dst))*sz], dst)
}

// Release drops the tensor's pages from the process's resident memory (a
// hint; the data stays readable and is paged back in on the next read).
// Streaming callers use it after converting a tensor they will not read
// again soon. It is a no-op for unknown names and on non-Linux systems.
func (f *SafetensorsFile) Release(name string) {
	if e, ok := f.byName[name]; ok && f.data != nil {
		releasePages(f.data, e.Begin, e.End)
	}
}

// Prefetch asks the kernel to start reading the tensor's pages in the
// background (a hint; no-op for unknown names and on non-Linux systems).
func (f *SafetensorsFile) Prefetch(name string) {
	if e, ok := f.byName[name]; ok && f.data != nil {
		prefetchPages(f.data, e.Begin, e.End)
	}
}

// Releaser is implemented by mmap-backed sources (see
// SafetensorsFile.Release).
type Releaser interface {
	Release(name string)
	Prefetch(name string)
}

// RangeReader is implemented by sources that can convert part of a tensor
// (elements [off, off+len(dst)) of its flattened data). Writers use it to
// stream tensors bigger than RAM.
type RangeReader interface {
	ReadF32Range(name string, off int, dst []float32) error
}

// RawSource is implemented by sources that expose stored bytes zero-copy.
type RawSource interface {
	Raw(name string) ([]byte, TensorInfo, error)
}

// DecodeF32 converts little-endian src of dtype dt into dst; len(src) must be
// len(dst)·dt.Size().
func DecodeF32(dt DType, src []byte, dst []float32) error {
	sz := dt.Size()
	if sz == 0 {
		return fmt.Errorf("unsupported dtype %q", dt)
	}
	if len(src) != len(dst)*sz {
		return fmt.Errorf("decode %s: %d bytes for %d elements", dt, len(src), len(dst))
	}
	parallelChunks(len(dst), func(lo, hi int) {
		switch dt {
		case F32:
			F32ToF32(src[lo*4:hi*4], dst[lo:hi])
		case BF16:
			BF16ToF32(src[lo*2:hi*2], dst[lo:hi])
		case F16:
			F16ToF32(src[lo*2:hi*2], dst[lo:hi])
		}
	})
	return nil
}

// EncodeF32 converts src into little-endian dst of dtype dt (bf16 and f16
// round to nearest even); len(dst) must be len(src)·dt.Size().
func EncodeF32(dt DType, src []float32, dst []byte) error {
	sz := dt.Size()
	if sz == 0 {
		return fmt.Errorf("unsupported dtype %q", dt)
	}
	if len(dst) != len(src)*sz {
		return fmt.Errorf("encode %s: %d bytes for %d elements", dt, len(dst), len(src))
	}
	parallelChunks(len(src), func(lo, hi int) {
		switch dt {
		case F32:
			F32ToBytes(src[lo:hi], dst[lo*4:hi*4])
		case BF16:
			F32ToBF16(src[lo:hi], dst[lo*2:hi*2])
		case F16:
			F32ToF16(src[lo:hi], dst[lo*2:hi*2])
		}
	})
	return nil
}

// ParseDType accepts safetensors names (F32, BF16, F16) and torch-style
// aliases (float32, bfloat16, float16, fp32, bf16, fp16), case-insensitively.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32", "fp32", "float":
		return F32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f16", "float16", "fp16", "half":
		return F16, nil
	}
	return "", fmt.Errorf("unknown dtype %q (want f32, bf16 or f16)", s)
}

// TorchName is the torch_dtype spelling used in config.json.
func (d DType) TorchName() string {
	switch d {
	case F32:
		return "float32"
	case BF16:
		return "bfloat16"
	case F16:
		return "float16"
	}
	return ""
}
