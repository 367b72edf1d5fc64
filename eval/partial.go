package eval

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// partialHeader is the first line of a partial-results file: which task,
// settings and caller key its items belong to.
type partialHeader struct {
	Partial string `json:"partial"`
	Key     string `json:"key"`
}

// partial is an open partial-results file of one task run.
type partial struct {
	f    *os.File
	done map[string]GenOutcome
}

// taskFingerprint hashes everything that decides a generation item's
// outcome apart from the model: the task, its prompts (few-shot examples
// included), stop strings, length cap, scoring settings and sandbox limits
// (not the parallelism, which changes none).
func taskFingerprint(t *Task, key string) string {
	h := sha256.New()
	l := t.CodeRun.Limits.withDefaults()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%q\x00%v\x00%d\x00%g\x00%g\x00%d\x00%v %v %d %d %d\x00%s\x00",
		t.Name, t.Output, t.MaxGenTokens, t.Until, t.RougeStem,
		t.CodeRun.N, t.CodeRun.Temperature, t.CodeRun.TopP, t.CodeRun.Seed,
		l.Wall, l.CPU, l.Memory, l.Procs, l.FileSize, key)
	for _, d := range t.Docs {
		fmt.Fprintf(h, "%s\x00%s\x00", d.ID, t.Context(d))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// openPartial reads the finished items of path (none when path is empty or
// absent) and opens it for appending. A file written for other settings is
// an error rather than silently mixed in; a last line cut short by an
// interruption is dropped.
func openPartial(path string, t *Task, key string) (*partial, error) {
	p := &partial{done: map[string]GenOutcome{}}
	if path == "" {
		return p, nil
	}
	want := partialHeader{Partial: t.Name, Key: taskFingerprint(t, key)}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("partial results: %w", err)
	}
	valid := 0 // bytes of b made of whole, parsed lines
	if len(b) > 0 {
		lines := bytes.SplitAfter(b, []byte("\n"))
		for i, ln := range lines {
			complete := bytes.HasSuffix(ln, []byte("\n"))
			if len(bytes.TrimSpace(ln)) == 0 {
				valid += len(ln)
				continue
			}
			if i == 0 {
				var h partialHeader
				if err := json.Unmarshal(ln, &h); err != nil || h.Partial == "" {
					return nil, errAt(path, 1, "not a partial-results file of minitron eval (first line %.60q)", ln)
				}
				if h != want {
					return nil, errAt(path, 1, "partial results of %s with other settings, prompts or model (key %s, this run %s): delete it or give another Partial file", h.Partial, h.Key, want.Key)
				}
				valid += len(ln)
				continue
			}
			var o GenOutcome
			if err := json.Unmarshal(ln, &o); err != nil || o.ID == "" {
				if !complete {
					break // cut short while being written
				}
				return nil, errAt(path, i+1, "not a finished item (%v)", err)
			}
			p.done[o.ID] = o
			valid += len(ln)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("partial results: %w", err)
	}
	// Drop a torn last line so the next item starts on a line of its own.
	if err := f.Truncate(int64(valid)); err != nil {
		f.Close()
		return nil, fmt.Errorf("partial results: %w", err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("partial results: %w", err)
	}
	p.f = f
	if valid == 0 {
		if err := p.writeLine(want); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *partial) writeLine(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	w := bufio.NewWriter(p.f)
	w.Write(buf.Bytes())
	if err := w.Flush(); err != nil {
		return fmt.Errorf("partial results: %w", err)
	}
	// Each item costs seconds of generation; a sync per line is cheap and
	// keeps finished items across a crash.
	return p.f.Sync()
}

func (p *partial) add(o GenOutcome) error {
	if p.f == nil {
		return nil
	}
	return p.writeLine(o)
}

func (p *partial) close() {
	if p.f != nil {
		p.f.Close()
	}
}
