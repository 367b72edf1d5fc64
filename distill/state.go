package distill

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
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

// engineSource is a model.TensorSource over an engine's student tensors
// (not the intermediate-state projection): a checkpoint is written from it
// one tensor at a time, each downloaded when the writer reaches it.
type engineSource struct {
	eng   Engine
	infos map[string]model.TensorInfo
}

func newEngineSource(eng Engine) *engineSource {
	s := &engineSource{eng: eng, infos: map[string]model.TensorInfo{}}
	for _, t := range eng.Tensors() {
		if t.Name != ISProjName {
			t.DType = model.F32
			s.infos[t.Name] = t
		}
	}
	return s
}

func (s *engineSource) Info(name string) (model.TensorInfo, bool) {
	t, ok := s.infos[name]
	return t, ok
}

func (s *engineSource) Names() []string {
	out := make([]string, 0, len(s.infos))
	for n := range s.infos {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (s *engineSource) ReadF32(name string, dst []float32) error {
	if _, ok := s.infos[name]; !ok {
		return fmt.Errorf("student: no tensor %q", name)
	}
	return s.eng.ReadState(name, dst, nil, nil)
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
	// Teacher identifies the teacher (teacherID) and Workers the kernel
	// goroutines of a CPU run (0 on a device): a resume with another of
	// either could diverge. Absent in checkpoints written before they were
	// recorded.
	Teacher string   `json:"teacher,omitempty"`
	Workers int      `json:"workers,omitempty"`
	Loss    *float64 `json:"loss,omitempty"` // the last step's training loss (what a resumed finished run reports); absent when not finite
}

const optimMagic = "MNTRADAM"

// The optimizer state file (optimizer.bin): magic, u64 n (the elements of
// every trained tensor), u64 AdamW step, the first moments then the second
// moments of every tensor in the engines' order (TrainTensors), f32 LE, the
// weights of the tensors outside the HF checkpoint (the intermediate-state
// projection), then a CRC32 of everything before it. It is written and read
// one tensor at a time, so it costs the host one tensor's buffer whatever
// the model's size, and its layout does not depend on the device.

// optimSections are the engine's tensors, those of them outside the HF
// checkpoint, and the elements of all.
func optimSections(eng Engine) (ts []model.TensorInfo, aux []model.TensorInfo, n int) {
	ts = eng.Tensors()
	for _, t := range ts {
		n += t.NumElements()
		if t.Name == ISProjName {
			aux = append(aux, t)
		}
	}
	return ts, aux, n
}

// section says which part of a tensor's state a pass of the file moves.
type section int

const (
	secM1 section = iota
	secM2
	secW
)

// parts maps buf to the ReadState/WriteState argument of section sec.
func (sec section) parts(buf []float32) (w, m1, m2 []float32) {
	switch sec {
	case secM1:
		return nil, buf, nil
	case secM2:
		return nil, nil, buf
	}
	return buf, nil, nil
}

// optimPass is one section of the file over its tensors.
type optimPass struct {
	sec section
	ts  []model.TensorInfo
}

// optimPasses are the file's sections in order.
func optimPasses(ts, aux []model.TensorInfo) []optimPass {
	return []optimPass{{secM1, ts}, {secM2, ts}, {secW, aux}}
}

func maxElements(ts []model.TensorInfo) int {
	n := 0
	for _, t := range ts {
		n = max(n, t.NumElements())
	}
	return n
}

// writeOptimizer streams eng's moments (and auxiliary weights) to path.
func writeOptimizer(path string, eng Engine, adamStep int) error {
	ts, aux, n := optimSections(eng)
	w, err := createCRC(path)
	if err != nil {
		return err
	}
	w.WriteString(optimMagic)
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(n))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(adamStep))
	w.Write(hdr[:])
	buf := make([]float32, maxElements(ts))
	var raw [4 << 10]byte
	for _, pass := range optimPasses(ts, aux) {
		for _, t := range pass.ts {
			b := buf[:t.NumElements()]
			pw, pm1, pm2 := pass.sec.parts(b)
			if err = eng.ReadState(t.Name, pw, pm1, pm2); err != nil {
				return w.finish(fmt.Errorf("optimizer state of %s: %w", t.Name, err))
			}
			for len(b) > 0 {
				k := min(len(b), len(raw)/4)
				for i, v := range b[:k] {
					binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
				}
				w.Write(raw[:4*k])
				b = b[k:]
			}
		}
	}
	return w.finish(nil)
}

// crcFile writes a file through a buffer, then appends the CRC-32 of
// everything written: the optimizer files' trailer.
type crcFile struct {
	*bufio.Writer
	f *os.File
	h hash.Hash32
}

func createCRC(path string) (*crcFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := crc32.NewIEEE()
	return &crcFile{Writer: bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20), f: f, h: h}, nil
}

// finish flushes, appends the checksum and syncs, unless err (the writer's
// own failure) is set; it always closes the file.
func (c *crcFile) finish(err error) error {
	if err == nil {
		err = c.Flush()
	}
	if err == nil {
		var crc [4]byte
		binary.LittleEndian.PutUint32(crc[:], c.h.Sum32())
		_, err = c.f.Write(crc[:])
	}
	if err == nil {
		err = c.f.Sync()
	}
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readOptimizer checks path's size and checksum, then streams the moments
// (and auxiliary weights) into eng and returns the AdamW step.
func readOptimizer(path string, eng Engine) (int, error) {
	ts, aux, n := optimSections(eng)
	na := 0
	for _, t := range aux {
		na += t.NumElements()
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	want := int64(len(optimMagic)) + 16 + 8*int64(n) + 4*int64(na) + 4
	if st.Size() != want {
		return 0, fmt.Errorf("%s: not an optimizer state for %d parameters (%d bytes, want %d)", path, n, st.Size(), want)
	}
	h := crc32.NewIEEE()
	if _, err := io.CopyN(h, f, want-4); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	var crc [4]byte
	if _, err := io.ReadFull(f, crc[:]); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if h.Sum32() != binary.LittleEndian.Uint32(crc[:]) {
		return 0, fmt.Errorf("%s: checksum mismatch (corrupt file)", path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, len(optimMagic)+16)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if string(head[:len(optimMagic)]) != optimMagic {
		return 0, fmt.Errorf("%s: not an optimizer state (bad magic)", path)
	}
	if got := binary.LittleEndian.Uint64(head[len(optimMagic):]); got != uint64(n) {
		return 0, fmt.Errorf("%s: holds %d parameters, the student has %d", path, got, n)
	}
	step := int(binary.LittleEndian.Uint64(head[len(optimMagic)+8:]))
	buf := make([]float32, maxElements(ts))
	var raw [4 << 10]byte
	for _, pass := range optimPasses(ts, aux) {
		for _, t := range pass.ts {
			b := buf[:t.NumElements()]
			for rest := b; len(rest) > 0; {
				k := min(len(rest), len(raw)/4)
				if _, err := io.ReadFull(r, raw[:4*k]); err != nil {
					return 0, fmt.Errorf("%s: %w", path, err)
				}
				for i := range rest[:k] {
					rest[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
				}
				rest = rest[k:]
			}
			w, m1, m2 := pass.sec.parts(b)
			if err := eng.WriteState(t.Name, w, m1, m2); err != nil {
				return 0, fmt.Errorf("%s: %s: %w", path, t.Name, err)
			}
		}
	}
	return step, nil
}

// checkpointer writes training checkpoints under dir/checkpoints: each one a
// Hugging Face checkpoint directory (config.json, model.safetensors,
// tokenizer files) plus optimizer.bin and trainer_state.json, built in a
// temporary directory and renamed into place; then the file "latest" is
// replaced atomically. A failed write (disk full) leaves the previous
// checkpoint as the latest and removes the partial one.
type checkpointer struct {
	dir          string      // the run's output dir
	keep         int         // last K kept (0 = all)
	tokenizerDir string      // copy tokenizer files from here
	dtype        model.DType // of the weights ("" is F32); the optimizer state is always f32
}

// failCheckpointHook lets tests fail a checkpoint after its weights and
// optimizer state are written (a disk filling up mid-checkpoint).
var failCheckpointHook func(step int) error

func (c *checkpointer) root() string { return filepath.Join(c.dir, "checkpoints") }

func stepName(step int) string { return fmt.Sprintf("step-%07d", step) }

// saveHook, when set (tests), is called at each stage of a checkpoint
// write: "weights", "optimizer", "state" (inside the temporary directory),
// "renamed" (the step directory in place, latest not yet updated) and
// "latest".
var saveHook func(stage string, step int)

func hook(stage string, step int) {
	if saveHook != nil {
		saveHook(stage, step)
	}
}

// save writes the checkpoint of st from eng: weights one tensor at a time
// into model.safetensors, the optimizer state likewise, all in step-N.partial,
// which is then renamed to step-N. An existing step-N (written before a
// crash and not named by latest) is moved aside first and removed only
// once the new one is in place, so a kill at any moment leaves a complete
// checkpoint to resume from.
func (c *checkpointer) save(cfg *model.Config, eng Engine, st TrainerState) (string, error) {
	tmp, err := c.begin(st.Step)
	if err != nil {
		return "", err
	}
	if err := c.writeWeights(tmp, cfg, eng, st.Step); err != nil {
		return "", c.fail(tmp, st.Step, err)
	}
	if err := writeOptimizer(filepath.Join(tmp, "optimizer.bin"), eng, st.AdamStep); err != nil {
		return "", c.fail(tmp, st.Step, err)
	}
	hook("optimizer", st.Step)
	return c.finish(tmp, st)
}

// begin makes the checkpoint root and returns step's fresh temporary
// directory (step-N.partial), which writeWeights creates.
func (c *checkpointer) begin(step int) (string, error) {
	root := c.root()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	tmp := c.partial(step)
	os.RemoveAll(tmp)
	return tmp, nil
}

func (c *checkpointer) partial(step int) string {
	return filepath.Join(c.root(), stepName(step)) + ".partial"
}

// fail removes a checkpoint that could not be written and says why.
func (c *checkpointer) fail(tmp string, step int, err error) error {
	os.RemoveAll(tmp)
	return fmt.Errorf("writing checkpoint of step %d in %s: %w", step, c.root(), err)
}

// writeWeights writes the HF checkpoint (config, weights one tensor at a
// time, tokenizer files) into tmp.
func (c *checkpointer) writeWeights(tmp string, cfg *model.Config, eng Engine, step int) error {
	if err := model.SaveCheckpoint(tmp, cfg, newEngineSource(eng), model.SaveOptions{DType: cmp.Or(c.dtype, model.F32)}); err != nil {
		return err
	}
	if c.tokenizerDir != "" {
		if _, err := model.CopyTokenizerFiles(c.tokenizerDir, tmp); err != nil {
			return err
		}
	}
	hook("weights", step)
	return nil
}

// finish writes the trainer state into tmp, renames it to step-N and
// updates latest.
func (c *checkpointer) finish(tmp string, st TrainerState) (string, error) {
	root := c.root()
	final := filepath.Join(root, stepName(st.Step))
	fail := func(err error) (string, error) { return "", c.fail(tmp, st.Step, err) }
	if failCheckpointHook != nil {
		if err := failCheckpointHook(st.Step); err != nil {
			return fail(err)
		}
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), js, nil); err != nil {
		return fail(err)
	}
	hook("state", st.Step)
	var aside string
	if _, err := os.Stat(final); err == nil {
		aside = filepath.Join(root, trashPrefix+stepName(st.Step))
		os.RemoveAll(aside)
		if err := os.Rename(final, aside); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if aside != "" {
		os.RemoveAll(aside)
	}
	hook("renamed", st.Step)
	if err := atomicfile.WriteFile(filepath.Join(root, "latest"), []byte(stepName(st.Step)+"\n"), nil); err != nil {
		return "", fmt.Errorf("checkpoint of step %d written but %s/latest not updated: %w", st.Step, root, err)
	}
	hook("latest", st.Step)
	c.prune(st.Step)
	return final, nil
}

const (
	stateFile   = "trainer_state.json"
	trashPrefix = ".trash-"
)

// cleanTemporaries removes what an interrupted run of this directory left
// behind: partial checkpoints, the checkpoint writer's and the atomic
// writes' temporaries, step directories moved aside, and the writability
// probe. Only names this package (and model.SaveCheckpoint and
// atomicfile) create are touched.
func cleanTemporaries(out string) {
	for _, dir := range []string{out, filepath.Join(out, "checkpoints")} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasSuffix(n, ".partial") || strings.HasPrefix(n, trashPrefix) || strings.HasPrefix(n, ".write-test-") ||
				(strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-")) {
				os.RemoveAll(filepath.Join(dir, n))
			}
		}
	}
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
		if e.IsDir() && completeStep(filepath.Join(c.root(), e.Name())) {
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

// completeStep reports a checkpoint directory that was renamed into place
// (step-N with its trainer state; a partial one has another name).
func completeStep(dir string) bool {
	n := filepath.Base(dir)
	if !strings.HasPrefix(n, "step-") || strings.Contains(n, ".") {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, stateFile))
	return err == nil
}

// latest returns the newest complete checkpoint directory, or "" if none.
// It is the one the file "latest" names unless a kill came between the
// rename and latest's update (then the newer directory is complete and
// latest is stale) or latest was lost: latest is for people and scripts,
// the directories are the truth.
func (c *checkpointer) latest() (string, error) {
	ents, err := os.ReadDir(c.root())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	best := ""
	for _, e := range ents {
		if d := filepath.Join(c.root(), e.Name()); e.IsDir() && completeStep(d) && e.Name() > filepath.Base(best) {
			best = d
		}
	}
	return best, nil
}

func readTrainerState(dir string) (TrainerState, error) {
	var st TrainerState
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s/trainer_state.json: %w", dir, err)
	}
	return st, nil
}
