package data

// PrepareCorpus tokenises a corpus into Megatron indexed datasets:
// OUT_train.{bin,idx}, OUT_val.{bin,idx} and OUT.manifest.json.
//
// Each document becomes one sequence (its tokens followed by the tokenizer's
// EOS as end-of-document), one document in the index. Which split a document
// goes to is decided by a hash of its Key alone, so it depends neither on the
// number of workers nor on where the corpus lives. Workers tokenise in
// parallel; results are written in corpus order, so outputs are byte-identical
// for any worker count.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/minitron-dev/minitron/internal/atomicfile"
)

// ManifestFormat names the manifest schema.
const ManifestFormat = "minitron-data-manifest/1"

// DefaultSplit is the default fraction of documents that go to training.
const DefaultSplit = 0.98

// PrepareOptions configures PrepareCorpus.
type PrepareOptions struct {
	Corpus        CorpusOptions
	Tokenizer     Tokenizer
	TokenizerPath string  // recorded in the manifest so inspect can decode
	Out           string  // output prefix
	Split         float64 // fraction of documents for training, (0,1]; 0 = DefaultSplit
	Workers       int     // tokenising goroutines; 0 = GOMAXPROCS
	// Progress, when set, is called as the corpus is read with the bytes
	// read so far and the corpus's total (from the walker goroutine, one
	// call at a time).
	Progress func(done, total int64)
	Log      io.Writer
	// Overwrite replaces the outputs of an earlier run at Out; without it
	// an existing output file is refused before any work.
	Overwrite bool
}

// ErrOutputExists is wrapped by errors that refuse to replace an existing
// output without Overwrite (a CLI adds its flag's name).
var ErrOutputExists = errors.New("already exists")

// PrepareOutputs are the files PrepareCorpus writes for prefix out, in the
// order it publishes them (the manifest last).
func PrepareOutputs(out string) []string {
	trainBin, trainIdx := IndexedPaths(out + "_train")
	valBin, valIdx := IndexedPaths(out + "_val")
	return []string{trainBin, trainIdx, valBin, valIdx, ManifestPath(out)}
}

// ManifestSplit describes one output dataset.
type ManifestSplit struct {
	Prefix    string `json:"prefix"` // base name; PREFIX.bin/.idx beside the manifest
	Documents int    `json:"documents"`
	Tokens    int64  `json:"tokens"`
}

// ManifestTokenizer identifies the tokenizer used.
type ManifestTokenizer struct {
	Identity  string `json:"identity"`
	Path      string `json:"path,omitempty"`
	VocabSize int    `json:"vocab_size"`
	EOS       int    `json:"eos"`
}

// ManifestArgs are the options that determine the output (the worker count
// does not, so it is not recorded and manifests stay byte-identical).
type ManifestArgs struct {
	Inputs      []string `json:"inputs,omitempty"`
	Builtin     string   `json:"builtin,omitempty"`
	Glob        string   `json:"glob,omitempty"`
	JSONLKey    string   `json:"jsonl_key"`
	MaxDocBytes int      `json:"max_doc_bytes"`
	DocBytes    int      `json:"doc_bytes"`
	Split       float64  `json:"split"`
	Strict      bool     `json:"strict"`
}

// Manifest describes a prepared corpus.
type Manifest struct {
	Format    string                   `json:"format"`
	Tokenizer ManifestTokenizer        `json:"tokenizer"`
	DType     string                   `json:"dtype"`
	Args      ManifestArgs             `json:"args"`
	Corpus    CorpusReport             `json:"corpus"`
	Splits    map[string]ManifestSplit `json:"splits"`
	// Prefix is the output prefix the manifest was read from (not stored).
	Prefix string `json:"-"`
}

// ManifestPath is where PrepareCorpus writes the manifest of prefix out.
func ManifestPath(out string) string { return out + ".manifest.json" }

// ReadManifest reads a manifest written by PrepareCorpus.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, m.Format, ManifestFormat)
	}
	m.Prefix = strings.TrimSuffix(path, ".manifest.json")
	return &m, nil
}

// ResolveDatasetPrefix maps a user's prefix to datasets and their manifest:
// PREFIX itself when PREFIX.idx exists (manifest PREFIX.manifest.json, or that
// of PREFIX without a _train/_val suffix), else PREFIX_train and PREFIX_val
// written by PrepareCorpus. The manifest is nil when there is none.
func ResolveDatasetPrefix(prefix string) (prefixes []string, m *Manifest) {
	exists := func(p string) bool { _, err := os.Stat(p + ".idx"); return err == nil }
	if exists(prefix) {
		prefixes = []string{prefix}
		for _, mp := range []string{prefix, strings.TrimSuffix(prefix, "_train"), strings.TrimSuffix(prefix, "_val")} {
			if mm, err := ReadManifest(ManifestPath(mp)); err == nil {
				return prefixes, mm
			}
		}
		return prefixes, nil
	}
	for _, s := range []string{"_train", "_val"} {
		if exists(prefix + s) {
			prefixes = append(prefixes, prefix+s)
		}
	}
	if mm, err := ReadManifest(ManifestPath(prefix)); err == nil {
		m = mm
	}
	return prefixes, m
}

// splitFraction maps a document key to [0,1) uniformly.
func splitFraction(key string) float64 {
	h := sha256.Sum256([]byte(key))
	return float64(binary.LittleEndian.Uint64(h[:])>>11) / (1 << 53)
}

type prepJob struct {
	seq int
	doc Document
}

type prepResult struct {
	seq    int
	key    string
	tokens []int32
	err    error
}

// PrepareCorpus tokenises the corpus and writes the datasets and manifest.
func PrepareCorpus(opts PrepareOptions) (*Manifest, error) {
	tok := opts.Tokenizer
	if tok == nil {
		return nil, fmt.Errorf("prepare: no tokenizer")
	}
	if opts.Out == "" {
		return nil, fmt.Errorf("prepare: no output prefix")
	}
	eos := tok.EOS()
	if eos < 0 {
		return nil, fmt.Errorf("prepare: tokenizer %s has no EOS token to end documents with", tok.Identity())
	}
	split := opts.Split
	if split == 0 {
		split = DefaultSplit
	}
	if !(split > 0 && split <= 1) {
		return nil, fmt.Errorf("prepare: Split %v, want a fraction in (0,1]", split)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	copts := opts.Corpus.withDefaults()
	files, err := CorpusFiles(copts)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	// A second run at the same prefix would silently replace the first
	// (or, with other splits, leave parts of it beside the new files).
	for _, p := range PrepareOutputs(opts.Out) {
		if _, err := os.Lstat(p); err == nil && !opts.Overwrite {
			return nil, fmt.Errorf("prepare: %s %w (a corpus was prepared at prefix %s before); set Overwrite to replace it", p, ErrOutputExists, opts.Out)
		}
	}
	if dir := filepath.Dir(opts.Out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	vocab := tok.VocabSize()
	dtype := DTypeForVocab(vocab)
	trainW, err := NewIndexedWriter(opts.Out+"_train", dtype)
	if err != nil {
		return nil, err
	}
	valW, err := NewIndexedWriter(opts.Out+"_val", dtype)
	if err != nil {
		trainW.Abort()
		return nil, err
	}
	abort := func() { trainW.Abort(); valW.Abort() }

	var total int64
	for _, f := range files {
		total += f.Size
	}
	var read int64

	// Pipeline: the walker reads documents in order and hands them to the
	// workers; the collector (this goroutine) writes results back in order.
	// window bounds the documents in flight, and so memory.
	window := make(chan struct{}, 4*workers)
	jobs := make(chan prepJob, workers)
	results := make(chan prepResult, workers)
	done := make(chan struct{})
	var report *CorpusReport
	var walkErr error
	var walkWG sync.WaitGroup
	walkWG.Add(1)
	go func() {
		defer walkWG.Done()
		defer close(jobs)
		seq := 0
		report, walkErr = walkFiles(files, copts, func(d Document) error {
			select {
			case window <- struct{}{}:
			case <-done:
				return errStopped
			}
			jobs <- prepJob{seq: seq, doc: d}
			seq++
			return nil
		}, func(n int64) {
			if opts.Progress != nil {
				read += n
				opts.Progress(read, total)
			}
		})
	}()
	var workWG sync.WaitGroup
	for i := 0; i < workers; i++ {
		workWG.Add(1)
		go func() {
			defer workWG.Done()
			for j := range jobs {
				results <- encodeDocument(tok, j, eos, vocab)
			}
		}()
	}
	go func() { workWG.Wait(); close(results) }()

	// held is the training document with the largest split fraction so far;
	// it is written late so that, if no document fell into validation, it can
	// become the validation set (a tiny corpus still gets a val split).
	var held *prepResult
	heldFrac := -1.0
	pending := map[int]prepResult{}
	next := 0
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
			close(done)
		}
	}
	write := func(r prepResult) error {
		frac := splitFraction(r.key)
		if frac >= split {
			return valW.AddDocument(r.tokens)
		}
		if split < 1 && frac > heldFrac {
			prev := held
			cur := r
			held, heldFrac = &cur, frac
			if prev == nil {
				return nil
			}
			return trainW.AddDocument(prev.tokens)
		}
		return trainW.AddDocument(r.tokens)
	}
	for r := range results {
		if firstErr != nil {
			continue // drain so the workers can finish
		}
		pending[r.seq] = r
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			<-window
			if r.err != nil {
				fail(r.err)
				break
			}
			if err := write(r); err != nil {
				fail(err)
				break
			}
		}
	}
	walkWG.Wait()
	if firstErr == nil && walkErr != nil && walkErr != errStopped {
		firstErr = walkErr
	}
	if firstErr != nil {
		abort()
		return nil, fmt.Errorf("prepare: %w", firstErr)
	}
	if held != nil {
		var err error
		if valW.Documents() == 0 && trainW.Documents() > 0 {
			err = valW.AddDocument(held.tokens)
		} else {
			err = trainW.AddDocument(held.tokens)
		}
		if err != nil {
			abort()
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	m := &Manifest{
		Format: ManifestFormat,
		Tokenizer: ManifestTokenizer{Identity: tok.Identity(), Path: absOrSame(opts.TokenizerPath),
			VocabSize: vocab, EOS: eos},
		DType: dtype.String(),
		Args: ManifestArgs{Inputs: copts.Inputs, Builtin: copts.Builtin, Glob: copts.Glob, JSONLKey: copts.JSONLKey,
			MaxDocBytes: copts.MaxDocBytes, DocBytes: copts.DocBytes, Split: split, Strict: copts.Strict},
		Corpus: *report,
		Splits: map[string]ManifestSplit{
			"train": {Prefix: filepath.Base(opts.Out) + "_train", Documents: trainW.Documents(), Tokens: trainW.Tokens()},
			"val":   {Prefix: filepath.Base(opts.Out) + "_val", Documents: valW.Documents(), Tokens: valW.Tokens()},
		},
	}
	if m.Corpus.Documents == 0 {
		abort()
		return nil, fmt.Errorf("prepare: no documents in %d input files (%d skipped as bad input)", len(files), report.IssueCount())
	}
	// Stage every file (where a full disk fails) before publishing any, so
	// the splits and the manifest appear together or not at all.
	staged, err := trainW.Stage()
	if err != nil {
		valW.Abort()
		return nil, err
	}
	vs, err := valW.Stage()
	if err != nil {
		atomicfile.Discard(staged)
		return nil, err
	}
	staged = append(staged, vs...)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		atomicfile.Discard(staged)
		return nil, err
	}
	ms, err := atomicfile.Stage(ManifestPath(opts.Out), append(b, '\n'))
	if err != nil {
		atomicfile.Discard(staged)
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if err := atomicfile.Publish(append(staged, ms)); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return m, nil
}

var errStopped = fmt.Errorf("stopped")

func absOrSame(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func encodeDocument(tok Tokenizer, j prepJob, eos, vocab int) prepResult {
	ids := tok.Encode(j.doc.Text)
	out := make([]int32, len(ids)+1)
	for i, id := range ids {
		if id < 0 || id >= vocab || id > math.MaxInt32 {
			return prepResult{seq: j.seq, err: fmt.Errorf("%s: tokenizer returned id %d outside its vocabulary of %d", j.doc.Source, id, vocab)}
		}
		out[i] = int32(id)
	}
	out[len(ids)] = int32(eos)
	return prepResult{seq: j.seq, key: j.doc.Key, tokens: out}
}
