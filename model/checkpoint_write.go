package model

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/minitron-dev/minitron/internal/atomicfile"
)

// SaveOptions controls how SaveCheckpoint and WriteSafetensors store tensors.
type SaveOptions struct {
	// DType to store every tensor in; empty keeps each tensor's own dtype
	// as reported by the source's Info (F32 when unknown). f32→bf16/f16
	// rounds to nearest even.
	DType DType
	// ShardBytes splits the weights into HF shards (model-0000i-of-0000K
	// .safetensors plus model.safetensors.index.json) of at most this many
	// data bytes each; a tensor larger than the limit gets a shard of its
	// own. 0 or negative writes one model.safetensors.
	ShardBytes int64
	// Metadata goes into every file's __metadata__; "format": "pt" is added
	// when absent because transformers refuses files without it.
	Metadata map[string]string
}

// writeChunkElems bounds the float32 staging buffer used while converting,
// so writing never holds more than one chunk of any tensor in memory when
// the source can read ranges.
const writeChunkElems = 1 << 20

var shardFileRE = regexp.MustCompile(`^model-\d+-of-\d+\.safetensors$`)

// ShardFileName is HF's shard naming: model-00001-of-00003.safetensors.
func ShardFileName(i, n int) string { return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n) }

// SaveCheckpoint writes cfg and every tensor of src as a Hugging Face
// checkpoint in dir. src is first validated against cfg (see
// ValidateTensors). Tensors are read one at a time (in chunks when src
// implements RangeReader), so checkpoints bigger than RAM can be written.
//
// The write is atomic: everything goes to a temporary directory beside dir
// and is renamed into place. If dir already exists its old config and
// weights are replaced, config.json last, so an interrupted save never
// looks like a complete checkpoint. Other files in dir (tokenizer) are kept.
func SaveCheckpoint(dir string, cfg *Config, src TensorSource, opts SaveOptions) (err error) {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("save %s: invalid config: %w", dir, err)
	}
	if _, err := ValidateTensors(cfg, src); err != nil {
		return fmt.Errorf("save %s: tensors do not match the config: %w", dir, err)
	}
	if opts.DType != "" && opts.DType.Size() == 0 {
		return fmt.Errorf("save %s: unsupported dtype %q", dir, opts.DType)
	}
	names := src.Names()
	infos := make([]TensorInfo, len(names))
	for i, n := range names {
		info, ok := src.Info(n)
		if !ok {
			return fmt.Errorf("save %s: tensor %q listed but has no info", dir, n)
		}
		info.DType = storeDType(info.DType, opts.DType)
		infos[i] = info
	}

	// Plan the shards (names are sorted, so shards hold contiguous ranges).
	var shards [][]int
	var cur []int
	var curBytes, total int64
	for i, info := range infos {
		b := int64(info.NumElements()) * int64(info.DType.Size())
		total += b
		if opts.ShardBytes > 0 && len(cur) > 0 && curBytes+b > opts.ShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, i)
		curBytes += b
	}
	shards = append(shards, cur)

	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(abs)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()

	var weightFiles []string
	weightMap := map[string]string{}
	for si, idx := range shards {
		fname := SafetensorsFile1
		if len(shards) > 1 {
			fname = ShardFileName(si+1, len(shards))
		}
		sub := make([]string, len(idx))
		for j, i := range idx {
			sub[j] = names[i]
			weightMap[names[i]] = fname
		}
		if _, err := writeSafetensorsFile(filepath.Join(tmp, fname), src, sub, opts); err != nil {
			return fmt.Errorf("save %s: %w", dir, err)
		}
		weightFiles = append(weightFiles, fname)
	}
	if len(shards) > 1 {
		idx := struct {
			Metadata  map[string]any    `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}{map[string]any{"total_size": total}, weightMap}
		b, err := json.MarshalIndent(idx, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(tmp, IndexFile), append(b, '\n')); err != nil {
			return err
		}
		weightFiles = append(weightFiles, IndexFile)
	}
	out := *cfg
	if opts.DType != "" {
		out.TorchDType = opts.DType.TorchName()
		// transformers >= 4.56 writes "dtype" instead of torch_dtype; keep
		// both in step.
		if _, ok := out.Extra["dtype"]; ok {
			out.Extra = maps.Clone(out.Extra)
			out.Extra["dtype"] = json.RawMessage(`"` + out.TorchDType + `"`)
		}
	}
	cb, err := out.MarshalJSON()
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(tmp, ConfigFile), cb); err != nil {
		return err
	}

	// Publish.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tmp, abs); err != nil {
			return err
		}
		tmp = ""
		return syncDir(parent)
	}
	// dir exists: drop the old config first (the checkpoint stops looking
	// complete), then the old weights, move the new ones in, config last.
	if err := removeIfExists(filepath.Join(abs, ConfigFile)); err != nil {
		return err
	}
	old, err := os.ReadDir(abs)
	if err != nil {
		return err
	}
	for _, e := range old {
		n := e.Name()
		if n == SafetensorsFile1 || n == IndexFile || shardFileRE.MatchString(n) {
			if err := os.Remove(filepath.Join(abs, n)); err != nil {
				return err
			}
		}
	}
	for _, n := range append(weightFiles, ConfigFile) {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(abs, n)); err != nil {
			return err
		}
	}
	return syncDir(abs)
}

func storeDType(have, want DType) DType {
	if want != "" {
		return want
	}
	if have.Size() == 0 {
		return F32
	}
	return have
}

// WriteSafetensors writes the named tensors of src (all when names is nil)
// to path as one safetensors file, atomically (temp file in the same
// directory, then rename). Tensors are sorted by name and converted to
// opts.DType (ShardBytes is ignored). It returns the file size.
func WriteSafetensors(path string, src TensorSource, names []string, opts SaveOptions) (int64, error) {
	if names == nil {
		names = src.Names()
	}
	if opts.DType != "" && opts.DType.Size() == 0 {
		return 0, fmt.Errorf("%s: unsupported dtype %q", path, opts.DType)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return 0, err
	}
	tmpName := f.Name()
	f.Close()
	if err := os.Chmod(tmpName, 0o644); err != nil {
		os.Remove(tmpName)
		return 0, err
	}
	n, err := writeSafetensorsFile(tmpName, src, names, opts)
	if err != nil {
		os.Remove(tmpName)
		return 0, err
	}
	if err := os.Rename(tmpName, path); err != nil {
		os.Remove(tmpName)
		return 0, err
	}
	return n, syncDir(dir)
}

// SafetensorsHeaderBytes builds the 8-byte length plus the JSON header for
// tensors laid out in the given order, padded with spaces to a multiple of 8
// so the data (and every f32 tensor in it) is aligned.
func SafetensorsHeaderBytes(tensors []TensorInfo, metadata map[string]string) ([]byte, error) {
	var js bytes.Buffer
	js.WriteByte('{')
	if len(metadata) > 0 {
		mb, err := json.Marshal(metadata)
		if err != nil {
			return nil, err
		}
		js.WriteString(`"` + MetadataKey + `":`)
		js.Write(mb)
	}
	var off int64
	for i, t := range tensors {
		if t.DType.Size() == 0 {
			return nil, fmt.Errorf("tensor %q: unsupported dtype %q", t.Name, t.DType)
		}
		if i > 0 || len(metadata) > 0 {
			js.WriteByte(',')
		}
		nb, _ := json.Marshal(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		sb, _ := json.Marshal(shape)
		end := off + int64(t.NumElements())*int64(t.DType.Size())
		fmt.Fprintf(&js, `%s:{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}`, nb, t.DType, sb, off, end)
		off = end
	}
	js.WriteByte('}')
	for js.Len()%8 != 0 {
		js.WriteByte(' ')
	}
	out := make([]byte, 8, 8+js.Len())
	binary.LittleEndian.PutUint64(out, uint64(js.Len()))
	return append(out, js.Bytes()...), nil
}

// writeSafetensorsFile writes path directly (callers handle atomicity).
func writeSafetensorsFile(path string, src TensorSource, names []string, opts SaveOptions) (int64, error) {
	names = append([]string(nil), names...)
	sort.Strings(names)
	infos := make([]TensorInfo, len(names))
	for i, n := range names {
		info, ok := src.Info(n)
		if !ok {
			return 0, fmt.Errorf("%s: source has no tensor %q", path, n)
		}
		info.DType = storeDType(info.DType, opts.DType)
		infos[i] = info
	}
	md := map[string]string{"format": "pt"}
	for k, v := range opts.Metadata {
		md[k] = v
	}
	hdr, err := SafetensorsHeaderBytes(infos, md)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	n, err := writeTensors(w, hdr, src, infos)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func writeTensors(w io.Writer, hdr []byte, src TensorSource, infos []TensorInfo) (int64, error) {
	total := int64(len(hdr))
	if _, err := w.Write(hdr); err != nil {
		return 0, err
	}
	rr, ranged := src.(RangeReader)
	rs, hasRaw := src.(RawSource)
	var f32 []float32
	var enc []byte
	for _, info := range infos {
		n := info.NumElements()
		sz := info.DType.Size()
		if hasRaw {
			if raw, stored, err := rs.Raw(info.Name); err == nil && stored.DType == info.DType && len(raw) == n*sz {
				if _, err := w.Write(raw); err != nil {
					return 0, err
				}
				total += int64(len(raw))
				continue
			}
		}
		chunk := n
		if ranged {
			chunk = min(n, writeChunkElems)
		}
		if cap(f32) < chunk {
			f32 = make([]float32, chunk)
			enc = make([]byte, chunk*4)
		}
		for off := 0; off < n; off += chunk {
			m := min(chunk, n-off)
			buf := f32[:m]
			var err error
			if ranged {
				err = rr.ReadF32Range(info.Name, off, buf)
			} else {
				err = src.ReadF32(info.Name, buf)
			}
			if err != nil {
				return 0, fmt.Errorf("tensor %q: %w", info.Name, err)
			}
			eb := enc[:m*sz]
			if err := EncodeF32(info.DType, buf, eb); err != nil {
				return 0, err
			}
			if _, err := w.Write(eb); err != nil {
				return 0, err
			}
			total += int64(len(eb))
		}
	}
	return total, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// syncDir makes renames durable; failures are ignored on systems where a
// directory cannot be fsynced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	d.Sync()
	return d.Close()
}

// TokenizerFiles are the files CopyTokenizerFiles carries from a teacher to
// a student checkpoint.
var TokenizerFiles = []string{
	"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
	"special_tokens_map.json", "generation_config.json",
}

// CopyTokenizerFiles copies the TokenizerFiles present in srcDir into dstDir
// (each atomically) and returns the names copied.
func CopyTokenizerFiles(srcDir, dstDir string) ([]string, error) {
	var copied []string
	for _, n := range TokenizerFiles {
		b, err := os.ReadFile(filepath.Join(srcDir, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return copied, err
		}
		if err := os.MkdirAll(dstDir, 0o755); err != nil {
			return copied, err
		}
		if err := atomicfile.WriteFile(filepath.Join(dstDir, n), b, nil); err != nil {
			return copied, err
		}
		copied = append(copied, n)
	}
	return copied, nil
}
