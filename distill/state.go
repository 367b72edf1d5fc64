package distill

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// The Student is a model.TensorSource over its live parameters (no copy),
// so checkpoints are written straight from the training arena.

// Info implements model.TensorSource.
func (s *Student) Info(name string) (model.TensorInfo, bool) {
	p, ok := s.byName[name]
	if !ok || p.Aux {
		return model.TensorInfo{}, false
	}
	return model.TensorInfo{Name: name, DType: model.F32, Shape: append([]int(nil), p.Shape...)}, true
}

// Names implements model.TensorSource.
func (s *Student) Names() []string {
	out := make([]string, 0, len(s.Params))
	for _, p := range s.Params {
		if !p.Aux {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// ReadF32 implements model.TensorSource.
func (s *Student) ReadF32(name string, dst []float32) error {
	p, ok := s.byName[name]
	if !ok || p.Aux {
		return fmt.Errorf("student: no tensor %q", name)
	}
	if len(dst) != len(p.Data) {
		return fmt.Errorf("student: tensor %q has %d elements, dst %d", name, len(p.Data), len(dst))
	}
	copy(dst, p.Data)
	return nil
}

// TrainerState is the JSON part of a training checkpoint: everything besides
// weights and optimizer moments that a resumed run needs to continue with
// exactly the losses of an uninterrupted one.
type TrainerState struct {
	Step        int               `json:"step"`
	AdamStep    int               `json:"adam_step"`
	Tokens      int64             `json:"tokens"`
	Seed        uint64            `json:"seed"`
	Sampler     data.SamplerState `json:"sampler"`
	StudentArch json.RawMessage   `json:"student_config,omitempty"`
	Fingerprint string            `json:"fingerprint"` // hyper-parameters that must not change on resume
}

const optimMagic = "MNTRADAM"

// writeOptimizer stores AdamW's moments: magic, u64 count, u64 step, m, v
// (f32 LE), the auxiliary trained tensors (not in the HF checkpoint), then a
// CRC32 of everything before it.
func writeOptimizer(path string, o *AdamW, aux [][]float32) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := crc32.NewIEEE()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	w.WriteString(optimMagic)
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(o.M)))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(o.Step))
	w.Write(hdr[:])
	var b [4]byte
	for _, arr := range append([][]float32{o.M, o.V}, aux...) {
		for _, v := range arr {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			w.Write(b[:])
		}
	}
	err = w.Flush()
	if err == nil {
		binary.LittleEndian.PutUint32(b[:], h.Sum32())
		_, err = f.Write(b[:])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readOptimizer(path string, o *AdamW, aux [][]float32) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n := len(o.M)
	na := 0
	for _, a := range aux {
		na += len(a)
	}
	want := len(optimMagic) + 16 + 8*n + 4*na + 4
	if len(b) != want || string(b[:len(optimMagic)]) != optimMagic {
		return fmt.Errorf("%s: not an optimizer state for %d parameters (%d bytes, want %d)", path, n, len(b), want)
	}
	if crc32.ChecksumIEEE(b[:len(b)-4]) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return fmt.Errorf("%s: checksum mismatch (corrupt file)", path)
	}
	p := b[len(optimMagic):]
	if int(binary.LittleEndian.Uint64(p)) != n {
		return fmt.Errorf("%s: holds %d parameters, the student has %d", path, binary.LittleEndian.Uint64(p), n)
	}
	o.Step = int(binary.LittleEndian.Uint64(p[8:]))
	p = p[16:]
	for i := range o.M {
		o.M[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	p = p[4*n:]
	for i := range o.V {
		o.V[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	p = p[4*n:]
	for _, a := range aux {
		for i := range a {
			a[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
		}
		p = p[4*len(a):]
	}
	return nil
}

// checkpointer writes training checkpoints under dir/checkpoints: each one a
// Hugging Face checkpoint directory (config.json, model.safetensors,
// tokenizer files) plus optimizer.bin and trainer_state.json, built in a
// temporary directory and renamed into place; then the file "latest" is
// replaced atomically. A failed write (disk full) leaves the previous
// checkpoint as the latest and removes the partial one.
type checkpointer struct {
	dir          string // the run's output dir
	keep         int    // last K kept (0 = all)
	tokenizerDir string // copy tokenizer files from here
}

// failCheckpointHook lets tests fail a checkpoint after its weights and
// optimizer state are written (a disk filling up mid-checkpoint).
var failCheckpointHook func(step int) error

func (c *checkpointer) root() string { return filepath.Join(c.dir, "checkpoints") }

func stepName(step int) string { return fmt.Sprintf("step-%07d", step) }

func (c *checkpointer) save(s *Student, opt *AdamW, st TrainerState) (string, error) {
	root := c.root()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(root, stepName(st.Step))
	tmp := final + ".partial"
	os.RemoveAll(tmp)
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("writing checkpoint of step %d in %s: %w", st.Step, root, err)
	}
	if err := model.SaveCheckpoint(tmp, s.Cfg, s, model.SaveOptions{DType: model.F32}); err != nil {
		return fail(err)
	}
	if c.tokenizerDir != "" {
		if _, err := model.CopyTokenizerFiles(c.tokenizerDir, tmp); err != nil {
			return fail(err)
		}
	}
	if err := writeOptimizer(filepath.Join(tmp, "optimizer.bin"), opt, s.auxData()); err != nil {
		return fail(err)
	}
	if failCheckpointHook != nil {
		if err := failCheckpointHook(st.Step); err != nil {
			return fail(err)
		}
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, "trainer_state.json"), js, nil); err != nil {
		return fail(err)
	}
	os.RemoveAll(final)
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(root, "latest"), []byte(stepName(st.Step)+"\n"), nil); err != nil {
		return "", fmt.Errorf("checkpoint of step %d written but %s/latest not updated: %w", st.Step, root, err)
	}
	c.prune(st.Step)
	return final, nil
}

// prune removes all but the last keep checkpoints (never the newest).
func (c *checkpointer) prune(newest int) {
	if c.keep <= 0 {
		return
	}
	ents, err := os.ReadDir(c.root())
	if err != nil {
		return
	}
	var steps []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step-") && !strings.HasSuffix(e.Name(), ".partial") {
			steps = append(steps, e.Name())
		}
	}
	sort.Strings(steps)
	for len(steps) > c.keep {
		if steps[0] != stepName(newest) {
			os.RemoveAll(filepath.Join(c.root(), steps[0]))
		}
		steps = steps[1:]
	}
}

// latest returns the newest complete checkpoint directory, or "" if none.
func (c *checkpointer) latest() (string, error) {
	b, err := os.ReadFile(filepath.Join(c.root(), "latest"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, "step-") || strings.ContainsAny(name, "/\\") {
		return "", fmt.Errorf("%s/latest names %q, not a checkpoint", c.root(), name)
	}
	return filepath.Join(c.root(), name), nil
}

func readTrainerState(dir string) (TrainerState, error) {
	var st TrainerState
	b, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s/trainer_state.json: %w", dir, err)
	}
	return st, nil
}

// auxData lists the auxiliary parameters' data (saved with the optimizer).
func (s *Student) auxData() [][]float32 {
	var out [][]float32
	for _, p := range s.Params {
		if p.Aux {
			out = append(out, p.Data)
		}
	}
	return out
}
