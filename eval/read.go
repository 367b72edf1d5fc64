package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// lineError is an input error located at a file and line, printed the way
// compilers do so editors can jump to it.
type lineError struct {
	File string
	Line int
	Msg  string
}

func (e *lineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func errAt(file string, line int, format string, args ...any) error {
	return &lineError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// readJSONL calls fn for every non-blank line of a JSON-lines file with the
// line's 1-based number. A line that is not a JSON object is reported with
// its position and the expected format named in what.
func readJSONL(path, what string, fn func(line int, obj map[string]json.RawMessage) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return scanJSONL(f, path, what, fn)
}

func scanJSONL(r io.Reader, path, what string, fn func(line int, obj map[string]json.RawMessage) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	n := 0
	seen := false
	for {
		raw, err := br.ReadBytes('\n')
		if len(raw) > 0 {
			n++
			raw = bytes.TrimSpace(raw)
			if n == 1 {
				raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
			}
			if len(raw) > 0 {
				var obj map[string]json.RawMessage
				if jerr := json.Unmarshal(raw, &obj); jerr != nil || obj == nil {
					msg := "not a JSON object"
					if jerr != nil {
						msg = "invalid JSON: " + jerr.Error()
					}
					return errAt(path, n, "%s (expected %s: one JSON object per line)", msg, what)
				}
				seen = true
				if ferr := fn(n, obj); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if !seen {
		return errAt(path, 0, "no items (expected %s)", what)
	}
	return nil
}

// field decodes obj[key] into dst; a missing or mistyped field is an error
// naming the key and the expected format, so a file of the wrong task says so.
func field(obj map[string]json.RawMessage, key string, dst any, path string, line int, what string) error {
	raw, ok := obj[key]
	if !ok {
		return errAt(path, line, "missing field %q (is this a %s file?)", key, what)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errAt(path, line, "field %q: %v (is this a %s file?)", key, err, what)
	}
	return nil
}
