package export

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/minitron-dev/minitron/internal/atomicfile"
	"github.com/minitron-dev/minitron/model"
)

// ErrOutExists is the error for an output path that already exists: export
// never writes over anything.
var ErrOutExists = errors.New("already exists")

// HFOptions say what HF writes.
type HFOptions struct {
	Model string      // checkpoint directory to read (required)
	Out   string      // directory to create (required; must not exist)
	DType model.DType // F32, BF16 or F16 (required)
	// ShardBytes splits the weights into HF shards of at most this many
	// bytes; 0 writes one model.safetensors.
	ShardBytes int64
}

// HFResult says what HF wrote.
type HFResult struct {
	Config         *model.Config
	Files          []string // weight files written (names inside Out)
	TokenizerFiles []string // copied from Model
	Bytes          int64    // tensor data bytes written (headers not counted)
	SourceBytes    int64    // tensor data bytes of Model
}

// checkOut refuses an output path that exists (a file, a directory, even
// an empty one: an export is never merged into something already there)
// and a parent that is not a directory.
func checkOut(opt, out string) error {
	if out == "" {
		return fmt.Errorf("%s is required", opt)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s %s %w", opt, out, ErrOutExists)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", opt, out, err)
	}
	parent := filepath.Dir(filepath.Clean(out))
	st, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("%s %s: parent directory: %w", opt, out, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s %s: parent %s is not a directory", opt, out, parent)
	}
	return nil
}

// openModel opens the checkpoint at dir for an export, naming the option.
func openModel(dir string) (*model.Checkpoint, error) {
	if dir == "" {
		return nil, errors.New("Model (the checkpoint directory) is required")
	}
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("Model %s: %w", dir, err)
	}
	return ck, nil
}

// HF writes Model's config and weights, cast to DType, with its tokenizer
// files and generation_config.json, as a new checkpoint directory Out. Other
// files of Model (a training run's optimizer.bin and trainer_state.json,
// reports) are not copied. Every option is checked before anything is
// written; the directory is built beside Out and renamed into place, so Out
// appears only when complete and a failure or cancellation leaves nothing.
func HF(ctx context.Context, o HFOptions) (*HFResult, error) {
	switch o.DType {
	case model.F32, model.BF16, model.F16:
	case "":
		return nil, errors.New("DType is required (F32, BF16 or F16)")
	default:
		return nil, fmt.Errorf("DType %q is not supported (want F32, BF16 or F16)", o.DType)
	}
	if o.ShardBytes < 0 {
		return nil, fmt.Errorf("ShardBytes %d is negative", o.ShardBytes)
	}
	if err := checkOut("Out", o.Out); err != nil {
		return nil, err
	}
	ck, err := openModel(o.Model)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	tmp, err := newTemp(o.Out)
	if err != nil {
		return nil, err
	}
	defer tmp.cleanup()
	// SaveCheckpoint wants a directory it can create: a child of the
	// staging directory, which is what gets renamed to Out.
	stage := filepath.Join(tmp.path, "ckpt")
	if err := model.SaveCheckpoint(stage, ck.Config(), cancellable{ctx, ck}, model.SaveOptions{DType: o.DType, ShardBytes: o.ShardBytes}); err != nil {
		return nil, err
	}
	tok, err := model.CopyTokenizerFiles(o.Model, stage)
	if err != nil {
		return nil, fmt.Errorf("copying the tokenizer files: %w", err)
	}
	more, err := copyFiles(o.Model, stage, extraTokenizerFiles)
	if err != nil {
		return nil, fmt.Errorf("copying the tokenizer files: %w", err)
	}
	tok = append(tok, more...)
	// Check what was written loads before it is published.
	out, err := model.OpenCheckpoint(stage)
	if err != nil {
		return nil, fmt.Errorf("the written checkpoint does not load: %w", err)
	}
	res := &HFResult{Config: out.Config(), TokenizerFiles: tok, Bytes: weightBytes(out), SourceBytes: weightBytes(ck)}
	for _, f := range out.Files() {
		res.Files = append(res.Files, filepath.Base(f)) // not the staging path
	}
	out.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := tmp.publish(stage); err != nil {
		return nil, err
	}
	return res, nil
}

// cancellable stops a long write once ctx is done. It keeps the
// checkpoint's ranged and raw reads, so SaveCheckpoint still streams big
// tensors in chunks (and copies same-dtype bytes as they are) instead of
// holding a whole tensor in f32.
type cancellable struct {
	ctx context.Context
	*model.Checkpoint
}

func (c cancellable) ReadF32(name string, dst []float32) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return c.Checkpoint.ReadF32(name, dst)
}

func (c cancellable) ReadF32Range(name string, off int, dst []float32) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return c.Checkpoint.ReadF32Range(name, off, dst)
}

func (c cancellable) Raw(name string) ([]byte, model.TensorInfo, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, model.TensorInfo{}, err
	}
	return c.Checkpoint.Raw(name)
}

var (
	_ model.RangeReader = cancellable{}
	_ model.RawSource   = cancellable{}
)

// temp is a private directory beside an output path; what is built in it
// is renamed to the output path once complete.
type temp struct {
	out, path string
}

// newTemp makes the temporary directory beside out, first removing those
// an interrupted export of the same output left.
func newTemp(out string) (*temp, error) {
	clean := filepath.Clean(out)
	dir, err := atomicfile.TempDir(clean, "export-tmp")
	if err != nil {
		return nil, err
	}
	return &temp{out: clean, path: dir}, nil
}

// publish renames src (inside the temporary directory) to the output path,
// refusing to replace anything that appeared there meanwhile.
func (t *temp) publish(src string) error {
	if _, err := os.Lstat(t.out); err == nil {
		return fmt.Errorf("%s %w (created while exporting)", t.out, ErrOutExists)
	}
	if err := os.Rename(src, t.out); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(t.out)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (t *temp) cleanup() { os.RemoveAll(t.path) }

// weightBytes is the size of ck's tensor data as stored.
func weightBytes(ck *model.Checkpoint) int64 {
	var n int64
	for _, name := range ck.Names() {
		info, _ := ck.Info(name)
		n += int64(info.NumElements()) * int64(info.DType.Size())
	}
	return n
}

// extraTokenizerFiles are the other files transformers' tokenizers and chat
// templates read, beside model.TokenizerFiles: a slow GPT-2-style
// tokenizer's vocab and merges, added tokens, and the chat template files
// newer checkpoints ship.
var extraTokenizerFiles = []string{"vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json"}

// copyFiles copies the names present (regular files) in src into dst.
func copyFiles(src, dst string, names []string) ([]string, error) {
	var copied []string
	for _, n := range names {
		st, err := os.Stat(filepath.Join(src, n))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return copied, err
		}
		if !st.Mode().IsRegular() {
			return copied, fmt.Errorf("%s is not a regular file", filepath.Join(src, n))
		}
		b, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			return copied, err
		}
		if err := os.WriteFile(filepath.Join(dst, n), b, 0o644); err != nil {
			return copied, err
		}
		copied = append(copied, n)
	}
	return copied, nil
}
