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

// partialItem is a finished item as the file holds it: its outcome and a
// hash of its prompt, so an item is reused only for the same prompt (a
// run with a larger Limit reuses the items of a smaller one).
type partialItem struct {
	GenOutcome
	PromptSHA string `json:"prompt_sha"`
}

// partial is an open partial-results file of one task run.
type partial struct {
	f    *os.File
	done map[string]partialItem
}

func promptSHA(prompt string) string {
	h := sha256.Sum256([]byte(prompt))
	return hex.EncodeToString(h[:12])
}

// lookup returns the finished outcome of the item id with this prompt.
func (p *partial) lookup(id, prompt string) (GenOutcome, bool) {
	it, ok := p.done[id]
	if !ok || it.PromptSHA != promptSHA(prompt) {
		return GenOutcome{}, false
	}
	return it.GenOutcome, true
}

// taskFingerprint hashes the settings that decide a generation item's
// outcome besides its prompt and the model: the task, stop strings,
// length cap, scoring settings and sandbox limits (not the parallelism,
// which changes none), and the caller's key (the model).
func taskFingerprint(t *Task, key string) string {
	h := sha256.New()
	l := t.CodeRun.Limits.withDefaults()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%q\x00%v\x00%d\x00%g\x00%g\x00%d\x00%v %v %d %d %d\x00%s\x00",
		t.Name, t.Output, t.MaxGenTokens, t.Until, t.RougeStem,
		t.CodeRun.N, t.CodeRun.Temperature, t.CodeRun.TopP, t.CodeRun.Seed,
		l.Wall, l.CPU, l.Memory, l.Procs, l.FileSize, key)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// openPartial reads the finished items of path (none when path is empty or
// absent) and opens it for appending. A file written for other settings is
// an error rather than silently mixed in; a last line cut short by an
// interruption is dropped.
func openPartial(path string, t *Task, key string) (*partial, error) {
	p := &partial{done: map[string]partialItem{}}
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
					return nil, errAt(path, 1, "partial results of %s with other settings or another model (key %s, this run %s): delete it or give another Partial file", h.Partial, h.Key, want.Key)
				}
				valid += len(ln)
				continue
			}
			var o partialItem
			if err := json.Unmarshal(ln, &o); err != nil || o.ID == "" {
				if !complete {
					break // cut short while being written
				}
				return nil, errAt(path, i+1, "not a finished item (%v)", err)
			}
			// A later line of the same item (its prompt changed) wins.
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

func (p *partial) add(o GenOutcome, prompt string) error {
	if p.f == nil {
		return nil
	}
	return p.writeLine(partialItem{o, promptSHA(prompt)})
}

func (p *partial) close() {
	if p.f != nil {
		p.f.Close()
	}
}
