package distill

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/minitron-dev/minitron/comm"
	"github.com/minitron-dev/minitron/internal/atomicfile"
	"github.com/minitron-dev/minitron/model"
)

// A data-parallel run with sharded moments (ZeRO 1 and 2) writes the
// optimizer state as pieces of one layout that does not depend on the
// number of ranks: the AdamW moments of the arena (every trained tensor
// in Tensors order, row-major), of which rank r holds elements [lo, hi).
//
//	optimizer-RRRRR-of-WWWWW.bin  magic "MNTRZERO", u64 arena elements N,
//	                              u64 lo, u64 hi, u64 AdamW step, then
//	                              m1[lo:hi] and m2[lo:hi] (f32 LE), CRC32
//	master-RRRRR-of-WWWWW.bin     (engines that shard their f32 master
//	                              weights: bf16 under ZeRO) magic
//	                              "MNTRMSTR", the same header, then
//	                              w[lo:hi] (f32 LE), CRC32
//	optimizer-aux.bin             magic "MNTRAUXW", u64 n, the weights of
//	                              the tensors outside the HF checkpoint
//	                              (the intermediate-state projection), CRC32
//	optimizer.index.json          the tensors with their arena offsets, the
//	                              pieces with their ranges
//
// optimizer.bin (a run alone, or replicated) is the same arena: m1[0:N]
// then m2[0:N]. A resumed run of any world size reads its own range from
// either.
const (
	shardMagic  = "MNTRZERO"
	masterMagic = "MNTRMSTR"
	auxMagic    = "MNTRAUXW"
	shardIndex  = "optimizer.index.json"
	auxFile     = "optimizer-aux.bin"
)

// ShardIndex is optimizer.index.json.
type ShardIndex struct {
	Format   string        `json:"format"` // "minitron-optimizer-shards/1"
	Elements int           `json:"elements"`
	AdamStep int           `json:"adam_step"`
	Tensors  []IndexTensor `json:"tensors"`
	Shards   []IndexShard  `json:"shards"`
	Aux      string        `json:"aux,omitempty"`
	// Masters: the shards' f32 master weights are in master-*.bin (the
	// same ranges as Shards); the HF checkpoint holds their bf16 values.
	Masters bool `json:"masters,omitempty"`
}

// IndexTensor is a tensor's place in the arena.
type IndexTensor struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Offset int    `json:"offset"`
}

// IndexShard is one piece of the moments: arena elements [Lo, Hi).
type IndexShard struct {
	File string `json:"file"`
	Lo   int    `json:"lo"`
	Hi   int    `json:"hi"`
}

const shardFormat = "minitron-optimizer-shards/1"

func shardName(rank, world int) string {
	return fmt.Sprintf("optimizer-%05d-of-%05d.bin", rank, world)
}

func masterName(rank, world int) string {
	return fmt.Sprintf("master-%05d-of-%05d.bin", rank, world)
}

const shardHeader = len(shardMagic) + 32

// writeShard streams moments [lo, hi) of eng's arena (n elements) to path.
func writeShard(path string, pe Parallel, n, lo, hi, adamStep int) error {
	return writeRanges(path, shardMagic, n, lo, hi, adamStep,
		func(a int, b []float32) error { return pe.ReadMoments(a, b, nil) },
		func(a int, b []float32) error { return pe.ReadMoments(a, nil, b) })
}

// writeRanges streams arena elements [lo, hi) of each pass's section to
// path under magic and the shard header.
func writeRanges(path, magic string, n, lo, hi, adamStep int, passes ...func(a int, b []float32) error) error {
	w, err := createCRC(path)
	if err != nil {
		return err
	}
	w.WriteString(magic)
	var hdr [32]byte
	for i, v := range []int{n, lo, hi, adamStep} {
		binary.LittleEndian.PutUint64(hdr[8*i:], uint64(v))
	}
	w.Write(hdr[:])
	buf := make([]float32, min(rangeChunk, hi-lo))
	raw := make([]byte, 4*len(buf))
	for _, read := range passes {
		if err != nil {
			break
		}
		err = forChunks(lo, hi, func(a, k int) error {
			b := buf[:k]
			if err := read(a, b); err != nil {
				return err
			}
			for i, v := range b {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
			w.Write(raw[:4*k])
			return nil
		})
	}
	return w.finish(err)
}

// rangeChunk is the most arena elements a range is streamed by at once.
const rangeChunk = 1 << 18

// forChunks calls f for the consecutive chunks [a, a+k) of [lo, hi), each
// at most rangeChunk long, until one fails.
func forChunks(lo, hi int, f func(a, k int) error) error {
	for a := lo; a < hi; a += rangeChunk {
		if err := f(a, min(rangeChunk, hi-a)); err != nil {
			return err
		}
	}
	return nil
}

// writeAux writes the weights of the tensors outside the HF checkpoint.
func writeAux(path string, eng Engine, aux []model.TensorInfo) error {
	var n int
	for _, t := range aux {
		n += t.NumElements()
	}
	b := make([]byte, 0, len(auxMagic)+8+4*n+4)
	b = append(b, auxMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(n))
	for _, t := range aux {
		w := make([]float32, t.NumElements())
		if err := eng.ReadState(t.Name, w, nil, nil); err != nil {
			return err
		}
		for _, v := range w {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return atomicfile.WriteFile(path, b, nil)
}

// writeShardIndex writes optimizer.index.json for world ranks.
func writeShardIndex(dir string, ts []model.TensorInfo, world, adamStep int, aux, masters bool) error {
	offs, n := arenaOffsets(ts)
	ix := ShardIndex{Format: shardFormat, Elements: n, AdamStep: adamStep, Masters: masters}
	for i, t := range ts {
		ix.Tensors = append(ix.Tensors, IndexTensor{Name: t.Name, Shape: t.Shape, Offset: offs[i]})
	}
	for r := 0; r < world; r++ {
		lo, hi := comm.Range(n, world, r)
		ix.Shards = append(ix.Shards, IndexShard{File: shardName(r, world), Lo: lo, Hi: hi})
	}
	if aux {
		ix.Aux = auxFile
	}
	js, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, shardIndex), js, nil)
}

// optimState is a checkpoint's optimizer state read by arena ranges.
type optimState interface {
	adamStep() int
	// moments reads m1 (sec secM1) or m2 of arena elements [lo, lo+len(dst)).
	moments(sec section, lo int, dst []float32) error
	// aux reads the weights of the aux tensors, in order, into dst.
	aux(dst []float32) error
	close()
}

// openOptimState opens dir's optimizer state for n arena elements (na of
// them aux weights): the shards with their index, or optimizer.bin; every
// file's size and checksum are checked first.
func openOptimState(dir string, ts []model.TensorInfo, n, na int) (optimState, error) {
	ixPath := filepath.Join(dir, shardIndex)
	b, err := os.ReadFile(ixPath)
	if errors.Is(err, os.ErrNotExist) {
		return openWholeOptim(filepath.Join(dir, "optimizer.bin"), n, na)
	}
	if err != nil {
		return nil, err
	}
	ix, err := parseShardIndex(b, ts, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ixPath, err)
	}
	st := &shardState{ix: ix}
	fail := func(err error) (optimState, error) {
		st.close()
		return nil, err
	}
	if ix.Masters {
		for r, sh := range ix.Shards {
			f, err := openRangeFile(filepath.Join(dir, masterName(r, len(ix.Shards))), masterMagic, n, sh, ix.AdamStep, 1)
			if err != nil {
				return fail(err)
			}
			st.masterFiles = append(st.masterFiles, f)
		}
	}
	for _, sh := range ix.Shards {
		f, err := openRangeFile(filepath.Join(dir, sh.File), shardMagic, n, sh, ix.AdamStep, 2)
		if err != nil {
			return fail(err)
		}
		st.files = append(st.files, f)
	}
	if na > 0 {
		if ix.Aux == "" {
			return fail(fmt.Errorf("%s: no aux file for the %d weights outside the HF checkpoint", ixPath, na))
		}
		f, err := checkedFile(filepath.Join(dir, ix.Aux), int64(len(auxMagic))+8+4*int64(na)+4)
		if err != nil {
			return fail(err)
		}
		st.auxF = f
	}
	return st, nil
}

// openRangeFile opens p, a file of arena range sh holding values f32
// sections of it under magic (writeRanges), and checks its size, checksum
// and header against the index.
func openRangeFile(p, magic string, n int, sh IndexShard, step, values int) (*os.File, error) {
	f, err := checkedFile(p, int64(shardHeader)+4*int64(values)*int64(sh.Hi-sh.Lo)+4)
	if err != nil {
		return nil, err
	}
	if err := checkRangeHeader(f, magic, n, sh, step); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkRangeHeader checks a range file's magic and header against its
// index entry.
func checkRangeHeader(f *os.File, magic string, n int, sh IndexShard, step int) error {
	hdr := make([]byte, shardHeader)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	u := func(i int) int { return int(binary.LittleEndian.Uint64(hdr[len(magic)+8*i:])) }
	if string(hdr[:len(magic)]) != magic || u(0) != n || u(1) != sh.Lo || u(2) != sh.Hi || u(3) != step {
		return fmt.Errorf("%s: header (magic %q, %d elements [%d,%d), step %d) does not match the index (%d elements [%d,%d), step %d)",
			f.Name(), hdr[:len(magic)], u(0), u(1), u(2), u(3), n, sh.Lo, sh.Hi, step)
	}
	return nil
}

// parseShardIndex decodes optimizer.index.json and checks it against the
// engine's tensors (n elements in all).
func parseShardIndex(b []byte, ts []model.TensorInfo, n int) (ShardIndex, error) {
	var ix ShardIndex
	if err := json.Unmarshal(b, &ix); err != nil {
		return ix, err
	}
	return ix, ix.check(ts, n)
}

// check validates an index against the engine's tensors.
func (ix *ShardIndex) check(ts []model.TensorInfo, n int) error {
	if ix.Format != shardFormat {
		return fmt.Errorf("format %q, want %q", ix.Format, shardFormat)
	}
	if ix.Elements != n || len(ix.Tensors) != len(ts) {
		return fmt.Errorf("holds %d elements in %d tensors, the student has %d in %d", ix.Elements, len(ix.Tensors), n, len(ts))
	}
	offs, _ := arenaOffsets(ts)
	for i, t := range ts {
		it := ix.Tensors[i]
		if it.Name != t.Name || it.Offset != offs[i] || !slices.Equal(it.Shape, t.Shape) {
			return fmt.Errorf("tensor %d is %s%v at %d, the student's is %s%v at %d", i, it.Name, it.Shape, it.Offset, t.Name, t.Shape, offs[i])
		}
	}
	at := 0
	for _, sh := range ix.Shards {
		if sh.Lo != at || sh.Hi < sh.Lo || filepath.Base(sh.File) != sh.File {
			return fmt.Errorf("shard %s [%d,%d) does not continue at %d", sh.File, sh.Lo, sh.Hi, at)
		}
		at = sh.Hi
	}
	if at != n {
		return fmt.Errorf("the shards cover [0,%d) of %d elements", at, n)
	}
	if ix.Aux != "" && filepath.Base(ix.Aux) != ix.Aux {
		return fmt.Errorf("aux file %q is not a file of the checkpoint", ix.Aux)
	}
	return nil
}

// checkedFile opens p and checks its size and CRC32 (the last 4 bytes,
// over the rest).
func checkedFile(p string, size int64) (*os.File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && st.Size() != size {
		err = fmt.Errorf("%d bytes, want %d (truncated or for another model)", st.Size(), size)
	}
	if err == nil {
		h := crc32.NewIEEE()
		if _, err = io.Copy(h, io.NewSectionReader(f, 0, size-4)); err == nil {
			var crc [4]byte
			if _, err = f.ReadAt(crc[:], size-4); err == nil && h.Sum32() != binary.LittleEndian.Uint32(crc[:]) {
				err = errors.New("checksum mismatch (corrupt file)")
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return f, nil
}

func readF32At(f *os.File, off int64, dst []float32) error {
	raw := make([]byte, 4*min(len(dst), 1<<16))
	for len(dst) > 0 {
		k := min(len(dst), len(raw)/4)
		if _, err := f.ReadAt(raw[:4*k], off); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		for i := range dst[:k] {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		dst, off = dst[k:], off+4*int64(k)
	}
	return nil
}

// shardState reads the pieces of a sharded optimizer state.
type shardState struct {
	ix          ShardIndex
	files       []*os.File
	masterFiles []*os.File // ix.Masters
	auxF        *os.File
}

// masters reads the master weights of arena elements [lo, lo+len(dst)).
func (s *shardState) masters(lo int, dst []float32) error {
	hi := lo + len(dst)
	for i, sh := range s.ix.Shards {
		if a, z := max(lo, sh.Lo), min(hi, sh.Hi); a < z {
			if err := readF32At(s.masterFiles[i], int64(shardHeader)+4*int64(a-sh.Lo), dst[a-lo:z-lo]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *shardState) adamStep() int { return s.ix.AdamStep }

func (s *shardState) moments(sec section, lo int, dst []float32) error {
	hi := lo + len(dst)
	for i, sh := range s.ix.Shards {
		a, z := max(lo, sh.Lo), min(hi, sh.Hi)
		if a >= z {
			continue
		}
		off := int64(shardHeader) + 4*int64(a-sh.Lo)
		if sec == secM2 {
			off += 4 * int64(sh.Hi-sh.Lo)
		}
		if err := readF32At(s.files[i], off, dst[a-lo:z-lo]); err != nil {
			return err
		}
	}
	return nil
}

func (s *shardState) aux(dst []float32) error {
	return readF32At(s.auxF, int64(len(auxMagic))+8, dst)
}

func (s *shardState) close() {
	for _, f := range append(s.files, s.masterFiles...) {
		f.Close()
	}
	if s.auxF != nil {
		s.auxF.Close()
	}
}

// wholeState is optimizer.bin read by ranges.
type wholeState struct {
	f    *os.File
	n    int
	step int
}

func openWholeOptim(path string, n, na int) (optimState, error) {
	f, err := checkedFile(path, int64(len(optimMagic))+16+8*int64(n)+4*int64(na)+4)
	if err != nil {
		return nil, err
	}
	head := make([]byte, len(optimMagic)+16)
	if _, err := f.ReadAt(head, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if string(head[:len(optimMagic)]) != optimMagic || binary.LittleEndian.Uint64(head[len(optimMagic):]) != uint64(n) {
		f.Close()
		return nil, fmt.Errorf("%s: not an optimizer state for %d parameters", path, n)
	}
	return &wholeState{f: f, n: n, step: int(binary.LittleEndian.Uint64(head[len(optimMagic)+8:]))}, nil
}

func (s *wholeState) adamStep() int { return s.step }

func (s *wholeState) moments(sec section, lo int, dst []float32) error {
	off := int64(len(optimMagic)) + 16 + 4*int64(lo)
	if sec == secM2 {
		off += 4 * int64(s.n)
	}
	return readF32At(s.f, off, dst)
}

func (s *wholeState) aux(dst []float32) error {
	return readF32At(s.f, int64(len(optimMagic))+16+8*int64(s.n), dst)
}

func (s *wholeState) close() { s.f.Close() }

// loadMasters restores the f32 master weights a sharded-master run saved
// (its HF checkpoint holds them rounded to bf16): into this rank's shard
// of them, or, for an engine with whole weights, tensor by tensor.
func loadMasters(st *shardState, eng Engine, dp *dataParallel, ts []model.TensorInfo) error {
	if dp != nil {
		if ms, ok := shardedMasters(dp.eng); ok {
			w := make([]float32, min(rangeChunk, dp.hi-dp.lo))
			return forChunks(dp.lo, dp.hi, func(a, k int) error {
				if err := st.masters(a, w[:k]); err != nil {
					return err
				}
				_, err := ms.WriteMasters(a, w[:k])
				return err
			})
		}
	}
	offs, _ := arenaOffsets(ts)
	w := make([]float32, maxElements(ts))
	for i, t := range ts {
		k := t.NumElements()
		if err := st.masters(offs[i], w[:k]); err != nil {
			return err
		}
		if err := eng.WriteState(t.Name, w[:k], nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// loadOptimizer restores dir's optimizer state into eng and returns the
// AdamW step: a run alone from optimizer.bin exactly as before; otherwise
// each rank reads what it holds (all the moments, or its shard's) from
// either layout, whatever world size wrote it.
func loadOptimizer(dir string, eng Engine, dp *dataParallel) (int, error) {
	if dp == nil {
		if _, err := os.Stat(filepath.Join(dir, shardIndex)); errors.Is(err, os.ErrNotExist) {
			return readOptimizer(filepath.Join(dir, "optimizer.bin"), eng)
		}
	}
	ts, aux, n := optimSections(eng)
	na := 0
	for _, t := range aux {
		na += t.NumElements()
	}
	st, err := openOptimState(dir, ts, n, na)
	if err != nil {
		return 0, err
	}
	defer st.close()
	if na > 0 {
		w := make([]float32, na)
		if err := st.aux(w); err != nil {
			return 0, err
		}
		for _, t := range aux {
			k := t.NumElements()
			if err := eng.WriteState(t.Name, w[:k], nil, nil); err != nil {
				return 0, err
			}
			w = w[k:]
		}
	}
	if ss, ok := st.(*shardState); ok && ss.ix.Masters {
		if err := loadMasters(ss, eng, dp, ts); err != nil {
			return 0, err
		}
	}
	if dp != nil && dp.stage > 0 {
		m1, m2 := make([]float32, min(rangeChunk, dp.hi-dp.lo)), make([]float32, min(rangeChunk, dp.hi-dp.lo))
		err := forChunks(dp.lo, dp.hi, func(a, k int) error {
			if err := st.moments(secM1, a, m1[:k]); err != nil {
				return err
			}
			if err := st.moments(secM2, a, m2[:k]); err != nil {
				return err
			}
			return dp.eng.WriteMoments(a, m1[:k], m2[:k])
		})
		if err != nil {
			return 0, err
		}
		return st.adamStep(), nil
	}
	offs, _ := arenaOffsets(ts)
	m1, m2 := make([]float32, maxElements(ts)), make([]float32, maxElements(ts))
	for i, t := range ts {
		k := t.NumElements()
		if err := st.moments(secM1, offs[i], m1[:k]); err != nil {
			return 0, err
		}
		if err := st.moments(secM2, offs[i], m2[:k]); err != nil {
			return 0, err
		}
		if err := eng.WriteState(t.Name, nil, m1[:k], m2[:k]); err != nil {
			return 0, err
		}
	}
	return st.adamStep(), nil
}
