package data

// Corpus ingestion: turning input paths into a deterministic sequence of
// documents.
//
//   - A text file is one document. A text file longer than MaxDocBytes
//     (default 256 KiB; the Opticks book is 567 KB) is split at blank lines
//     into groups of consecutive paragraphs of at least DocBytes (default
//     8 KiB) each, so a single book still yields enough documents for a
//     train/validation split. The pieces concatenate back to the file exactly.
//   - A .jsonl or .json file holds one JSON object per line; the string under
//     JSONLKey (default "text") of each line is a document. Blank lines are
//     skipped; other bad lines are reported with file:line.
//   - A directory is walked recursively in lexical order (hidden directories
//     skipped); Glob, if set, filters files by base name (e.g. "*.go").
//
// Every document has a Key that does not depend on where the corpus lives on
// disk (the path relative to its input root, plus ":line" or "#piece"), so the
// train/val split decided from it is the same on every machine.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Default document sizes for splitting large text files.
const (
	DefaultMaxDocBytes = 256 << 10
	DefaultDocBytes    = 8 << 10
)

// Document is one unit of text of a corpus.
type Document struct {
	Source string // where it came from: path, path:line (JSONL) or path#piece
	Key    string // location-independent identity (decides the split)
	Text   string
}

// CorpusOptions selects the documents of a corpus.
type CorpusOptions struct {
	Inputs   []string // files and directories
	Builtin  string   // "go-src" or "opticks" (added after Inputs)
	Glob     string   // base-name filter for files found in directories
	JSONLKey string   // field holding the text in .jsonl/.json lines; default "text"
	// MaxDocBytes: text files longer than this are split into paragraph
	// groups of at least DocBytes. 0 means the defaults; MaxDocBytes < 0
	// never splits.
	MaxDocBytes int
	DocBytes    int
	// Strict makes the first bad input (unreadable file, invalid UTF-8, bad
	// JSONL line) an error instead of a counted, skipped issue.
	Strict bool
}

func (o CorpusOptions) withDefaults() CorpusOptions {
	if o.JSONLKey == "" {
		o.JSONLKey = "text"
	}
	if o.MaxDocBytes == 0 {
		o.MaxDocBytes = DefaultMaxDocBytes
	}
	if o.DocBytes <= 0 {
		o.DocBytes = DefaultDocBytes
	}
	return o
}

// CorpusFile is one input file.
type CorpusFile struct {
	Path  string
	Key   string // path relative to its input root, slash-separated
	Size  int64
	JSONL bool
}

// Issue kinds.
const (
	IssueUnreadable  = "unreadable"
	IssueInvalidUTF8 = "invalid-utf8"
	IssueJSONL       = "jsonl"
)

// CorpusIssue is one bad input that was skipped.
type CorpusIssue struct {
	Kind   string `json:"kind"`
	Source string `json:"source"` // file, or file:line
	Err    string `json:"error"`
}

func (i CorpusIssue) Error() string { return i.Source + ": " + i.Err }

// maxIssueExamples bounds the issues kept in a report; all are counted.
const maxIssueExamples = 50

// CorpusReport summarises a walk over a corpus.
type CorpusReport struct {
	Files     int            `json:"files"`
	Documents int            `json:"documents"`
	Bytes     int64          `json:"bytes"` // bytes of the documents yielded
	Issues    map[string]int `json:"issues"`
	Examples  []CorpusIssue  `json:"issue_examples,omitempty"`
	// ContentSHA256 hashes every file read (key, size, bytes) in order, so
	// two runs over the same inputs can be recognised.
	ContentSHA256 string `json:"content_sha256"`
}

// IssueCount is the total number of issues.
func (r *CorpusReport) IssueCount() int {
	n := 0
	for _, c := range r.Issues {
		n += c
	}
	return n
}

func isJSONL(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".jsonl" || ext == ".json"
}

// CorpusFiles lists the input files in the order they are read: inputs in the
// given order, each directory in lexical order, then the built-in corpus.
func CorpusFiles(opts CorpusOptions) ([]CorpusFile, error) {
	if opts.Glob != "" {
		if _, err := filepath.Match(opts.Glob, "x"); err != nil {
			return nil, fmt.Errorf("bad Glob pattern %q: %w", opts.Glob, err)
		}
	}
	var files []CorpusFile
	seen := map[string]bool{}
	add := func(path, key string, size int64) {
		abs, err := filepath.Abs(path)
		if err != nil {
			abs = path
		}
		if seen[abs] {
			return
		}
		seen[abs] = true
		files = append(files, CorpusFile{Path: path, Key: key, Size: size, JSONL: isJSONL(path)})
	}
	for _, in := range opts.Inputs {
		st, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in, err)
		}
		if !st.IsDir() {
			add(in, filepath.Base(in), st.Size())
			continue
		}
		base := filepath.Base(filepath.Clean(in))
		root := in
		if r, err := filepath.EvalSymlinks(in); err == nil {
			root = r // WalkDir does not descend into a symlinked root
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("input %s: %w", in, err)
			}
			if d.IsDir() {
				if p != root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if opts.Glob != "" {
				if ok, _ := filepath.Match(opts.Glob, d.Name()); !ok {
					return nil
				}
			}
			info, err := os.Stat(p) // follows symlinks to files
			if err != nil || !info.Mode().IsRegular() {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			add(p, base+"/"+filepath.ToSlash(rel), info.Size())
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if opts.Builtin != "" {
		paths, err := BuiltinFiles(opts.Builtin)
		if err != nil {
			return nil, err
		}
		root, _ := builtinRoot(opts.Builtin)
		for _, p := range paths {
			var size int64
			if st, err := os.Stat(p); err == nil {
				size = st.Size()
			}
			rel, _ := filepath.Rel(root, p)
			add(p, opts.Builtin+"/"+filepath.ToSlash(rel), size)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no input files (inputs %v, builtin %q, glob %q)", opts.Inputs, opts.Builtin, opts.Glob)
	}
	return files, nil
}

// WalkDocuments calls fn for every document of the corpus, in a deterministic
// order. Bad inputs are skipped and counted in the report (or returned as an
// error with opts.Strict). An error from fn stops the walk and is returned.
func WalkDocuments(opts CorpusOptions, fn func(Document) error) (*CorpusReport, error) {
	files, err := CorpusFiles(opts)
	if err != nil {
		return nil, err
	}
	return walkFiles(files, opts, fn, nil)
}

// walker carries the state of one walk.
type walker struct {
	opts    CorpusOptions
	rep     *CorpusReport
	hash    hash.Hash
	fn      func(Document) error
	onBytes func(int64) // progress: input bytes consumed
}

func walkFiles(files []CorpusFile, opts CorpusOptions, fn func(Document) error, onBytes func(int64)) (*CorpusReport, error) {
	opts = opts.withDefaults()
	if onBytes == nil {
		onBytes = func(int64) {}
	}
	w := &walker{opts: opts, rep: &CorpusReport{Issues: map[string]int{}}, hash: sha256.New(), fn: fn, onBytes: onBytes}
	for _, f := range files {
		if err := w.file(f); err != nil {
			return w.rep, err
		}
	}
	w.rep.ContentSHA256 = hex.EncodeToString(w.hash.Sum(nil))
	return w.rep, nil
}

// issue records a bad input; with Strict it becomes the walk's error.
func (w *walker) issue(kind, source, msg string) error {
	is := CorpusIssue{Kind: kind, Source: source, Err: msg}
	if w.opts.Strict {
		return fmt.Errorf("%w (Strict: a bad input is an error)", is)
	}
	w.rep.Issues[kind]++
	if len(w.rep.Examples) < maxIssueExamples {
		w.rep.Examples = append(w.rep.Examples, is)
	}
	return nil
}

func (w *walker) emit(d Document) error {
	w.rep.Documents++
	w.rep.Bytes += int64(len(d.Text))
	return w.fn(d)
}

// hashEnd closes one file in the content hash, which holds for each file its
// key, NUL, bytes and length, so files cannot run into each other.
func (w *walker) hashEnd(n int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	w.hash.Write(b[:])
}

func (w *walker) file(f CorpusFile) error {
	if f.JSONL {
		return w.jsonl(f)
	}
	b, err := os.ReadFile(f.Path)
	w.onBytes(f.Size)
	if err != nil {
		return w.issue(IssueUnreadable, f.Path, err.Error())
	}
	w.rep.Files++
	w.hash.Write([]byte(f.Key + "\x00"))
	w.hash.Write(b)
	w.hashEnd(int64(len(b)))
	if !utf8.Valid(b) {
		off := firstInvalidUTF8(b)
		return w.issue(IssueInvalidUTF8, f.Path, fmt.Sprintf("invalid UTF-8 at byte %d (line %d); file skipped", off, 1+bytes.Count(b[:off], []byte("\n"))))
	}
	text := string(b)
	if w.opts.MaxDocBytes < 0 || len(text) <= w.opts.MaxDocBytes {
		return w.emit(Document{Source: f.Path, Key: f.Key, Text: text})
	}
	for i, piece := range SplitParagraphs(text, w.opts.DocBytes) {
		src := fmt.Sprintf("%s#%d", f.Path, i)
		if err := w.emit(Document{Source: src, Key: fmt.Sprintf("%s#%d", f.Key, i), Text: piece}); err != nil {
			return err
		}
	}
	return nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// jsonl streams a JSON-lines file, so corpora larger than memory work.
func (w *walker) jsonl(f CorpusFile) error {
	fh, err := os.Open(f.Path)
	if err != nil {
		w.onBytes(f.Size)
		return w.issue(IssueUnreadable, f.Path, err.Error())
	}
	defer fh.Close()
	w.rep.Files++
	w.hash.Write([]byte(f.Key + "\x00"))
	r := bufio.NewReaderSize(fh, 1<<20)
	var total, reported int64
	defer func() { w.hashEnd(total); w.onBytes(max(f.Size-reported, 0)) }()
	line := 0
	for {
		ln, rerr := r.ReadBytes('\n')
		if len(ln) > 0 {
			line++
			total += int64(len(ln))
			w.hash.Write(ln)
			if total-reported >= 1<<20 {
				w.onBytes(total - reported)
				reported = total
			}
			if err := w.jsonlLine(f, line, bytes.TrimSpace(ln)); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return w.issue(IssueUnreadable, fmt.Sprintf("%s:%d", f.Path, line+1), rerr.Error())
		}
	}
}

func (w *walker) jsonlLine(f CorpusFile, line int, ln []byte) error {
	if len(ln) == 0 {
		return nil
	}
	src := fmt.Sprintf("%s:%d", f.Path, line)
	if !utf8.Valid(ln) {
		return w.issue(IssueInvalidUTF8, src, fmt.Sprintf("invalid UTF-8 at byte %d of the line; line skipped", firstInvalidUTF8(ln)))
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(ln, &obj); err != nil {
		return w.issue(IssueJSONL, src, "not a JSON object: "+err.Error())
	}
	raw, ok := obj[w.opts.JSONLKey]
	var text string
	if ok {
		ok = json.Unmarshal(raw, &text) == nil
	}
	if !ok {
		return w.issue(IssueJSONL, src, fmt.Sprintf("no string field %q", w.opts.JSONLKey))
	}
	return w.emit(Document{Source: src, Key: fmt.Sprintf("%s:%d", f.Key, line), Text: text})
}

// SplitParagraphs cuts text after blank lines into pieces of at least minBytes
// (the last may be shorter); the pieces concatenate back to text.
func SplitParagraphs(text string, minBytes int) []string {
	var out []string
	start, pos := 0, 0
	for pos < len(text) {
		end := strings.IndexByte(text[pos:], '\n')
		if end < 0 {
			break
		}
		line := text[pos : pos+end]
		pos += end + 1
		if strings.TrimSpace(line) == "" && pos-start >= minBytes {
			// Take any further blank lines along so a piece starts with text.
			for pos < len(text) {
				e := strings.IndexByte(text[pos:], '\n')
				if e < 0 || strings.TrimSpace(text[pos:pos+e]) != "" {
					break
				}
				pos += e + 1
			}
			out = append(out, text[start:pos])
			start = pos
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

// sortedKeys returns m's keys in order (for stable output).
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
