package data

// Megatron-LM / NeMo "mmap" indexed dataset: PREFIX.bin holds the raw tokens
// of every sequence back to back; PREFIX.idx describes them:
//
//	magic      9 bytes  "MMIDIDX\x00\x00"
//	version    u64      1
//	dtype      u8       1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16
//	S          u64      number of sequences
//	D          u64      number of document indices
//	lengths    i32[S]   tokens per sequence
//	pointers   i64[S]   byte offset of each sequence in .bin
//	doc_idx    i64[D]   sequence index where each document starts, then S
//
// All little-endian. As in Megatron-LM's IndexedDatasetBuilder, doc_idx starts
// with 0 and gets len(lengths) appended at the end of every document, so a
// file of S one-sequence documents has D = S+1 and doc_idx = 0..S. Megatron's
// multimodal variant appends i8 modes[S]; the reader accepts and ignores them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/minitron-dev/minitron/internal/atomicfile"
)

// indexMagic is the 9-byte header of every Megatron .idx file.
var indexMagic = []byte("MMIDIDX\x00\x00")

const (
	indexVersion    = 1
	indexHeaderSize = 9 + 8 + 1 + 8 + 8
)

// IndexDType is the numeric code of the token type in a .idx file.
type IndexDType uint8

// Megatron-LM's DType codes.
const (
	DTypeUint8   IndexDType = 1
	DTypeInt8    IndexDType = 2
	DTypeInt16   IndexDType = 3
	DTypeInt32   IndexDType = 4
	DTypeInt64   IndexDType = 5
	DTypeFloat64 IndexDType = 6
	DTypeFloat32 IndexDType = 7
	DTypeUint16  IndexDType = 8
)

// String returns numpy's name of the type.
func (d IndexDType) String() string {
	switch d {
	case DTypeUint8:
		return "uint8"
	case DTypeInt8:
		return "int8"
	case DTypeInt16:
		return "int16"
	case DTypeInt32:
		return "int32"
	case DTypeInt64:
		return "int64"
	case DTypeFloat64:
		return "float64"
	case DTypeFloat32:
		return "float32"
	case DTypeUint16:
		return "uint16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Size is the number of bytes of one element, 0 for an unknown code.
func (d IndexDType) Size() int {
	switch d {
	case DTypeUint8, DTypeInt8:
		return 1
	case DTypeInt16, DTypeUint16:
		return 2
	case DTypeInt32, DTypeFloat32:
		return 4
	case DTypeInt64, DTypeFloat64:
		return 8
	}
	return 0
}

// isTokenType reports whether the code is an integer type we can hold tokens in.
func (d IndexDType) isTokenType() bool {
	return d.Size() != 0 && d != DTypeFloat32 && d != DTypeFloat64
}

// tokenRange is the inclusive range of token ids the type can store (capped
// to int32, the in-memory token type).
func (d IndexDType) tokenRange() (lo, hi int64) {
	switch d {
	case DTypeUint8:
		return 0, math.MaxUint8
	case DTypeInt8:
		return math.MinInt8, math.MaxInt8
	case DTypeInt16:
		return math.MinInt16, math.MaxInt16
	case DTypeUint16:
		return 0, math.MaxUint16
	}
	return math.MinInt32, math.MaxInt32
}

// DTypeForVocab is Megatron's choice of token type: uint16 when the vocabulary
// has fewer than 65500 ids, else int32.
func DTypeForVocab(vocabSize int) IndexDType {
	if vocabSize > 0 && vocabSize < 65500 {
		return DTypeUint16
	}
	return DTypeInt32
}

// IndexedPaths returns the .bin and .idx paths of a dataset prefix.
func IndexedPaths(prefix string) (bin, idx string) { return prefix + ".bin", prefix + ".idx" }

// IndexedWriter streams sequences into a new PREFIX.bin/.idx pair. Nothing is
// visible under the final names until Close succeeds: both files are written
// under temporary names in the same directory and renamed, .idx last, so a
// reader never sees an index describing a .bin that is not complete.
type IndexedWriter struct {
	prefix  string
	dtype   IndexDType
	bin     *os.File
	buf     []byte
	pending []byte // buffered .bin bytes
	lengths []int32
	docIdx  []int64
	inDoc   bool // sequences added since the last EndDocument
	tokens  int64
	err     error
	closed  bool
}

// NewIndexedWriter starts a dataset at prefix (PREFIX.bin, PREFIX.idx) with
// tokens stored as dtype.
func NewIndexedWriter(prefix string, dtype IndexDType) (*IndexedWriter, error) {
	if !dtype.isTokenType() {
		return nil, fmt.Errorf("indexed dataset %s: dtype %v cannot hold token ids", prefix, dtype)
	}
	binPath, _ := IndexedPaths(prefix)
	f, err := os.CreateTemp(filepath.Dir(binPath), filepath.Base(binPath)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("indexed dataset %s: %w", prefix, err)
	}
	// CreateTemp makes 0600 files; datasets are meant to be shared.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("indexed dataset %s: %w", prefix, err)
	}
	return &IndexedWriter{prefix: prefix, dtype: dtype, bin: f, docIdx: []int64{0}}, nil
}

// DType is the token type being written.
func (w *IndexedWriter) DType() IndexDType { return w.dtype }

// Sequences is the number of sequences added so far.
func (w *IndexedWriter) Sequences() int { return len(w.lengths) }

// Documents is the number of completed documents.
func (w *IndexedWriter) Documents() int { return len(w.docIdx) - 1 }

// Tokens is the number of tokens added so far.
func (w *IndexedWriter) Tokens() int64 { return w.tokens }

// AddSequence appends one sequence to the current document.
func (w *IndexedWriter) AddSequence(tokens []int32) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("indexed dataset %s: write after Close", w.prefix)
	}
	if int64(len(tokens)) > math.MaxInt32 {
		return w.fail(fmt.Errorf("indexed dataset %s: sequence of %d tokens exceeds the int32 length field", w.prefix, len(tokens)))
	}
	lo, hi := w.dtype.tokenRange()
	size := w.dtype.Size()
	for i, t := range tokens {
		if int64(t) < lo || int64(t) > hi {
			return w.fail(fmt.Errorf("indexed dataset %s: token %d (at %d of sequence %d) does not fit %v", w.prefix, t, i, len(w.lengths), w.dtype))
		}
		w.pending = appendToken(w.pending, w.dtype, t)
		if len(w.pending) >= 1<<20-size {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	w.lengths = append(w.lengths, int32(len(tokens)))
	w.tokens += int64(len(tokens))
	w.inDoc = true
	return nil
}

// EndDocument closes the current document (Megatron's end_document).
func (w *IndexedWriter) EndDocument() {
	w.docIdx = append(w.docIdx, int64(len(w.lengths)))
	w.inDoc = false
}

// AddDocument appends a document made of one sequence.
func (w *IndexedWriter) AddDocument(tokens []int32) error {
	if err := w.AddSequence(tokens); err != nil {
		return err
	}
	w.EndDocument()
	return nil
}

func appendToken(b []byte, d IndexDType, t int32) []byte {
	switch d {
	case DTypeUint8, DTypeInt8:
		return append(b, byte(t))
	case DTypeInt16, DTypeUint16:
		return binary.LittleEndian.AppendUint16(b, uint16(t))
	case DTypeInt64:
		return binary.LittleEndian.AppendUint64(b, uint64(int64(t)))
	}
	return binary.LittleEndian.AppendUint32(b, uint32(t))
}

func (w *IndexedWriter) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	if _, err := w.bin.Write(w.pending); err != nil {
		return w.fail(fmt.Errorf("indexed dataset %s: %w", w.prefix, err))
	}
	w.pending = w.pending[:0]
	return nil
}

func (w *IndexedWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// Abort discards everything written; the final paths are left untouched.
func (w *IndexedWriter) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.bin.Close()
	os.Remove(w.bin.Name())
}

// Close finishes the dataset: an open document is ended, the .bin is synced,
// the .idx written to a synced temporary file, and both are renamed into
// place, .idx last.
func (w *IndexedWriter) Close() error {
	staged, err := w.Stage()
	if err != nil {
		return err
	}
	if err := atomicfile.Publish(staged); err != nil {
		return w.fail(fmt.Errorf("indexed dataset %s: %w", w.prefix, err))
	}
	return nil
}

// Stage finishes the dataset like Close but leaves both files under
// temporary names: the .bin and then the .idx, for atomicfile.Publish to
// rename together with other outputs (a corpus's splits and manifest are
// published all or none). On error nothing is left behind. Close after
// Stage returns Stage's error.
func (w *IndexedWriter) Stage() ([]atomicfile.Staged, error) {
	if w.closed {
		if w.err == nil {
			return nil, fmt.Errorf("indexed dataset %s: already closed", w.prefix)
		}
		return nil, w.err
	}
	if w.err != nil {
		w.Abort()
		return nil, w.err
	}
	if w.inDoc {
		w.EndDocument()
	}
	if err := w.flush(); err != nil {
		w.Abort()
		return nil, err
	}
	binPath, idxPath := IndexedPaths(w.prefix)
	tmpBin := w.bin.Name()
	err := w.bin.Sync()
	if cerr := w.bin.Close(); err == nil {
		err = cerr
	}
	w.closed = true
	if err != nil {
		os.Remove(tmpBin)
		return nil, w.fail(fmt.Errorf("indexed dataset %s: %w", binPath, err))
	}
	idx, err := atomicfile.Stage(idxPath, encodeIndex(w.dtype, w.lengths, w.docIdx))
	if err != nil {
		os.Remove(tmpBin)
		return nil, w.fail(fmt.Errorf("indexed dataset %s: %w", idxPath, err))
	}
	return []atomicfile.Staged{{Tmp: tmpBin, Path: binPath}, idx}, nil
}

// encodeIndex builds the bytes of an .idx file; pointers follow from lengths.
func encodeIndex(d IndexDType, lengths []int32, docIdx []int64) []byte {
	b := make([]byte, 0, indexHeaderSize+12*len(lengths)+8*len(docIdx))
	b = append(b, indexMagic...)
	b = binary.LittleEndian.AppendUint64(b, indexVersion)
	b = append(b, byte(d))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(lengths)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(docIdx)))
	for _, n := range lengths {
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
	}
	var ptr int64
	for _, n := range lengths {
		b = binary.LittleEndian.AppendUint64(b, uint64(ptr))
		ptr += int64(n) * int64(d.Size())
	}
	for _, x := range docIdx {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return b
}

// WriteIndexed writes documents (one sequence each) as a dataset at prefix.
func WriteIndexed(prefix string, dtype IndexDType, docs [][]int32) error {
	w, err := NewIndexedWriter(prefix, dtype)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if err := w.AddDocument(d); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// IndexedDataset is a read-only, memory-mapped Megatron indexed dataset. It is
// safe for concurrent reads.
type IndexedDataset struct {
	prefix   string
	dtype    IndexDType
	idxMap   mapping
	binMap   mapping
	idx      []byte // whole .idx
	bin      []byte // whole .bin
	nSeq     int
	lengths  []byte // i32[S] view into idx
	pointers []byte // i64[S]
	docs     []byte // i64[D]
	nDoc     int
	tokens   int64
}

// ErrCorruptIndex is wrapped by every validation error of OpenIndexed.
var ErrCorruptIndex = errors.New("corrupt indexed dataset")

// OpenIndexed maps PREFIX.idx and PREFIX.bin and validates them: magic,
// version, dtype, counts against file sizes, every pointer inside .bin and
// consistent with the lengths, and document indices monotone from 0 to S.
func OpenIndexed(prefix string) (*IndexedDataset, error) {
	binPath, idxPath := IndexedPaths(prefix)
	im, err := mapFile(idxPath)
	if err != nil {
		return nil, err
	}
	bm, err := mapFile(binPath)
	if err != nil {
		im.close()
		return nil, err
	}
	d := &IndexedDataset{prefix: prefix, idxMap: im, binMap: bm, idx: im.data, bin: bm.data}
	if err := d.parse(idxPath, binPath); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func corrupt(path, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", path, ErrCorruptIndex, fmt.Sprintf(format, args...))
}

func (d *IndexedDataset) parse(idxPath, binPath string) error {
	b := d.idx
	if len(b) < indexHeaderSize {
		if len(b) >= len(indexMagic) && string(b[:len(indexMagic)]) != string(indexMagic) {
			return corrupt(idxPath, "bad magic %q, want %q (not a Megatron mmap .idx)", b[:len(indexMagic)], indexMagic)
		}
		return corrupt(idxPath, "file is %d bytes, shorter than the %d-byte header", len(b), indexHeaderSize)
	}
	if string(b[:9]) != string(indexMagic) {
		return corrupt(idxPath, "bad magic %q, want %q (not a Megatron mmap .idx)", b[:9], indexMagic)
	}
	if v := binary.LittleEndian.Uint64(b[9:]); v != indexVersion {
		return corrupt(idxPath, "unsupported version %d, want %d", v, indexVersion)
	}
	d.dtype = IndexDType(b[17])
	if d.dtype.Size() == 0 {
		return corrupt(idxPath, "unknown dtype code %d", b[17])
	}
	if !d.dtype.isTokenType() {
		return corrupt(idxPath, "dtype %v cannot hold token ids", d.dtype)
	}
	s := binary.LittleEndian.Uint64(b[18:])
	nd := binary.LittleEndian.Uint64(b[26:])
	body := uint64(len(b) - indexHeaderSize)
	// Check each count alone first so the products below cannot overflow.
	if s > body/12 || nd > body/8 || 12*s+8*nd > body {
		return corrupt(idxPath, "counts (%d sequences, %d document indices) exceed the file size (%d bytes)", s, nd, len(b))
	}
	need := 12*s + 8*nd
	if extra := body - need; extra != 0 && extra != s {
		// extra == s is Megatron's multimodal i8 mode per sequence.
		return corrupt(idxPath, "%d trailing bytes after the document indices", extra)
	}
	d.nSeq = int(s)
	d.nDoc = int(nd)
	off := uint64(indexHeaderSize)
	d.lengths = b[off : off+4*s]
	off += 4 * s
	d.pointers = b[off : off+8*s]
	off += 8 * s
	d.docs = b[off : off+8*nd]

	size := int64(d.dtype.Size())
	var next int64
	for i := 0; i < d.nSeq; i++ {
		n := int64(int32(binary.LittleEndian.Uint32(d.lengths[4*i:])))
		p := int64(binary.LittleEndian.Uint64(d.pointers[8*i:]))
		if n < 0 {
			return corrupt(idxPath, "sequence %d has negative length %d", i, n)
		}
		if p != next {
			return corrupt(idxPath, "pointer of sequence %d is %d, want %d (pointers must follow the lengths: not monotone or overlapping)", i, p, next)
		}
		next = p + n*size
		if next > int64(len(d.bin)) {
			return corrupt(binPath, "sequence %d ends at byte %d but the .bin has %d bytes (truncated .bin?)", i, next, len(d.bin))
		}
		d.tokens += n
	}
	if next != int64(len(d.bin)) {
		return corrupt(binPath, ".bin has %d bytes but the index describes %d", len(d.bin), next)
	}
	if d.nDoc == 0 {
		return corrupt(idxPath, "no document indices (want at least [0])")
	}
	prev := int64(0)
	for i := 0; i < d.nDoc; i++ {
		x := int64(binary.LittleEndian.Uint64(d.docs[8*i:]))
		if i == 0 && x != 0 {
			return corrupt(idxPath, "document index 0 is %d, want 0", x)
		}
		if x < prev || x > int64(d.nSeq) {
			return corrupt(idxPath, "document index %d is %d: not monotone within [0,%d]", i, x, d.nSeq)
		}
		prev = x
	}
	if prev != int64(d.nSeq) {
		return corrupt(idxPath, "last document index is %d, want the sequence count %d", prev, d.nSeq)
	}
	return nil
}

// Close unmaps the files. Slices returned earlier stay valid (they are copies).
func (d *IndexedDataset) Close() error {
	err := d.idxMap.close()
	if e := d.binMap.close(); err == nil {
		err = e
	}
	d.idx, d.bin, d.lengths, d.pointers, d.docs = nil, nil, nil, nil, nil
	d.nSeq, d.nDoc = 0, 0
	return err
}

// Prefix is the path prefix the dataset was opened with.
func (d *IndexedDataset) Prefix() string { return d.prefix }

// DType is the stored token type.
func (d *IndexedDataset) DType() IndexDType { return d.dtype }

// NumSequences is S.
func (d *IndexedDataset) NumSequences() int { return d.nSeq }

// NumDocuments is the number of documents (D-1).
func (d *IndexedDataset) NumDocuments() int { return d.nDoc - 1 }

// NumTokens is the total number of tokens.
func (d *IndexedDataset) NumTokens() int64 { return d.tokens }

// SequenceLength is the number of tokens of sequence i.
func (d *IndexedDataset) SequenceLength(i int) int {
	return int(int32(binary.LittleEndian.Uint32(d.lengths[4*i:])))
}

func (d *IndexedDataset) pointer(i int) int64 {
	return int64(binary.LittleEndian.Uint64(d.pointers[8*i:]))
}

// DocumentIndices returns a copy of doc_idx (D entries, 0 first, S last).
func (d *IndexedDataset) DocumentIndices() []int64 {
	out := make([]int64, d.nDoc)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(d.docs[8*i:]))
	}
	return out
}

// Document returns the tokens of document i (all its sequences).
func (d *IndexedDataset) Document(i int) ([]int32, error) {
	if i < 0 || i >= d.NumDocuments() {
		return nil, fmt.Errorf("%s: document %d out of range [0,%d)", d.prefix, i, d.NumDocuments())
	}
	lo := int(binary.LittleEndian.Uint64(d.docs[8*i:]))
	hi := int(binary.LittleEndian.Uint64(d.docs[8*(i+1):]))
	var out []int32
	for s := lo; s < hi; s++ {
		seq, err := d.Sequence(s)
		if err != nil {
			return nil, err
		}
		out = append(out, seq...)
	}
	return out, nil
}

// Sequence returns a copy of the tokens of sequence i.
func (d *IndexedDataset) Sequence(i int) ([]int32, error) {
	if i < 0 || i >= d.nSeq {
		return nil, fmt.Errorf("%s: sequence %d out of range [0,%d)", d.prefix, i, d.nSeq)
	}
	out := make([]int32, d.SequenceLength(i))
	return out, d.ReadTokens(i, 0, out)
}

// ReadTokens fills dst with tokens of sequence seq starting at token offset.
func (d *IndexedDataset) ReadTokens(seq, offset int, dst []int32) error {
	if seq < 0 || seq >= d.nSeq {
		return fmt.Errorf("%s: sequence %d out of range [0,%d)", d.prefix, seq, d.nSeq)
	}
	n := d.SequenceLength(seq)
	if offset < 0 || offset+len(dst) > n {
		return fmt.Errorf("%s: tokens [%d,%d) outside sequence %d of %d tokens", d.prefix, offset, offset+len(dst), seq, n)
	}
	size := d.dtype.Size()
	b := d.bin[d.pointer(seq)+int64(offset*size):]
	switch d.dtype {
	case DTypeUint16:
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case DTypeInt16:
		for i := range dst {
			dst[i] = int32(int16(binary.LittleEndian.Uint16(b[2*i:])))
		}
	case DTypeInt32:
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case DTypeInt64:
		for i := range dst {
			v := int64(binary.LittleEndian.Uint64(b[8*i:]))
			if v < math.MinInt32 || v > math.MaxInt32 {
				return fmt.Errorf("%s: token %d of sequence %d does not fit int32", d.prefix, v, seq)
			}
			dst[i] = int32(v)
		}
	case DTypeUint8:
		for i := range dst {
			dst[i] = int32(b[i])
		}
	case DTypeInt8:
		for i := range dst {
			dst[i] = int32(int8(b[i]))
		}
	}
	return nil
}

// IndexedStats summarises sequence lengths.
type IndexedStats struct {
	MinLength, MaxLength int
	MeanLength           float64
}

// Stats scans the lengths of all sequences.
func (d *IndexedDataset) Stats() IndexedStats {
	var st IndexedStats
	if d.nSeq == 0 {
		return st
	}
	st.MinLength = math.MaxInt
	for i := 0; i < d.nSeq; i++ {
		n := d.SequenceLength(i)
		st.MinLength = min(st.MinLength, n)
		st.MaxLength = max(st.MaxLength, n)
	}
	st.MeanLength = float64(d.tokens) / float64(d.nSeq)
	return st
}
