package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/data"
	"github.com/spf13/cobra"
)

func init() { register(newDataCmd) }

func newDataCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Prepare and inspect tokenised corpora (Megatron indexed datasets)",
		Long: `Tokenise text into Megatron-LM/NeMo indexed datasets (.bin/.idx), which the
importance, distill and train stages sample from, and inspect such datasets.`,
		Example: `  minitron data prepare --builtin go-src --tokenizer tok.json --out data/go
  minitron data inspect data/go --tokenizer tok.json`,
	}
	cmd.AddCommand(newDataPrepareCmd(), newDataInspectCmd())
	return cmd
}

// DataPrepareOptions are the flags of `data prepare`.
type DataPrepareOptions struct {
	Inputs      []string
	Glob        string
	JSONLKey    string
	Builtin     string
	Tokenizer   string
	Out         string
	Split       float64
	Workers     int
	Strict      bool
	MaxDocBytes int
	DocBytes    int
	Overwrite   bool
}

func newDataPrepareCmd() *cobra.Command {
	o := &DataPrepareOptions{}
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Tokenise files, directories, JSONL or a built-in corpus into train/val indexed datasets",
		Long: `Tokenise a corpus into OUT_train.{bin,idx}, OUT_val.{bin,idx} and OUT.manifest.json.

Inputs are text files (one document each), directories (walked recursively, --glob filters
base names, hidden directories skipped) and .jsonl/.json files (one JSON object per line, the
--jsonl-key string is a document). Text files longer than --max-doc-bytes are split at blank
lines into documents of at least --doc-bytes, so a single book still has a validation split.
Every document ends with the tokenizer's EOS. The split is decided per document by a hash
of its path (relative to its input), so it is the same on every machine and for any
--workers. Unreadable files, invalid UTF-8 and bad JSONL lines are skipped and reported
(an error with --strict). Built-in corpora: go-src (every .go file of the Go installation),
opticks (Newton's Opticks, shipped with Go).
An earlier run's outputs at --out are refused unless --overwrite; the splits and the manifest
are written under temporary names and published together, so a failure (a full disk) leaves
none of them.`,
		Example: `  minitron data prepare --builtin opticks --tokenizer tok.json --out data/opticks
  minitron data prepare --input ~/code --glob '*.go' --tokenizer tok.json --out data/code --workers 8
  minitron data prepare --input corpus.jsonl --jsonl-key text --tokenizer ./Minitron-4B --out data/web --strict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDataPrepare(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Inputs, "input", nil, "file or directory to read (repeatable)")
	f.StringVar(&o.Glob, "glob", "", "only files in directories whose base name matches, e.g. '*.go'")
	f.StringVar(&o.JSONLKey, "jsonl-key", "text", "field of each JSONL line that holds the document")
	f.StringVar(&o.Builtin, "builtin", "", "built-in corpus: go-src or opticks")
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer.json, SentencePiece .model, or a model directory (required)")
	f.StringVar(&o.Out, "out", "", "output prefix (required)")
	f.Float64Var(&o.Split, "split", data.DefaultSplit, "fraction of documents for training; the rest is validation")
	f.IntVar(&o.Workers, "workers", 0, "tokenising goroutines (default: all cores)")
	f.BoolVar(&o.Strict, "strict", false, "fail on the first unreadable file, invalid UTF-8 or bad JSONL line")
	f.IntVar(&o.MaxDocBytes, "max-doc-bytes", data.DefaultMaxDocBytes, "split text files longer than this at blank lines (-1: never)")
	f.IntVar(&o.DocBytes, "doc-bytes", data.DefaultDocBytes, "minimum size of the pieces of a split file")
	f.BoolVar(&o.Overwrite, "overwrite", false, "replace the outputs of an earlier run at --out")
	_ = cmd.MarkFlagRequired("tokenizer")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runDataPrepare(o *DataPrepareOptions, w io.Writer) error {
	if len(o.Inputs) == 0 && o.Builtin == "" {
		return fmt.Errorf("data prepare: give --input PATH or --builtin go-src|opticks")
	}
	tok, err := data.LoadTokenizer(o.Tokenizer)
	if err != nil {
		return err
	}
	start := time.Now()
	bar := newProgressBar("tokenising")
	m, err := data.PrepareCorpus(data.PrepareOptions{
		Corpus: data.CorpusOptions{Inputs: o.Inputs, Builtin: o.Builtin, Glob: o.Glob, JSONLKey: o.JSONLKey,
			MaxDocBytes: o.MaxDocBytes, DocBytes: o.DocBytes, Strict: o.Strict},
		Tokenizer: tok, TokenizerPath: o.Tokenizer, Out: o.Out, Split: o.Split, Workers: o.Workers,
		Progress: bar.Update, Overwrite: o.Overwrite,
	})
	bar.Finish()
	if errors.Is(err, data.ErrOutputExists) {
		return fmt.Errorf("%w (pass --overwrite)", err)
	}
	if err != nil {
		return err
	}
	el := time.Since(start)
	c := m.Corpus
	tr, va := m.Splits["train"], m.Splits["val"]
	fmt.Fprintf(w, "prepared %d documents from %d files (%.1f MB) with %s in %s\n",
		c.Documents, c.Files, float64(c.Bytes)/1e6, m.Tokenizer.Identity, el.Round(time.Millisecond))
	fmt.Fprintf(w, "  train  %s.{bin,idx}  %d documents  %d tokens\n", o.Out+"_train", tr.Documents, tr.Tokens)
	fmt.Fprintf(w, "  val    %s.{bin,idx}  %d documents  %d tokens\n", o.Out+"_val", va.Documents, va.Tokens)
	sec := el.Seconds()
	if sec > 0 {
		fmt.Fprintf(w, "  dtype %s, %.2f MB/s, %.0f tokens/s, %.2f bytes/token\n", m.DType,
			float64(c.Bytes)/1e6/sec, float64(tr.Tokens+va.Tokens)/sec, float64(c.Bytes)/float64(max(tr.Tokens+va.Tokens, 1)))
	}
	if n := c.IssueCount(); n > 0 {
		var kinds []string
		for k, v := range c.Issues {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "  skipped %d bad inputs (%s); first ones:\n", n, strings.Join(kinds, ", "))
		for i, is := range c.Examples {
			if i == 10 {
				fmt.Fprintf(w, "    ... (%d listed in %s)\n", len(c.Examples), data.ManifestPath(o.Out))
				break
			}
			fmt.Fprintf(w, "    %s\n", is.Error())
		}
	}
	fmt.Fprintf(w, "  manifest %s\n", data.ManifestPath(o.Out))
	return nil
}

// DataInspectOptions are the flags of `data inspect`.
type DataInspectOptions struct {
	Tokenizer string
	Sequence  int
	Tokens    int
}

func newDataInspectCmd() *cobra.Command {
	o := &DataInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect PREFIX",
		Short: "Print counts, dtype and a decoded sample of an indexed dataset",
		Long: `Print sequence, document and token counts, the token type and one sample of an indexed
dataset. PREFIX is a dataset (PREFIX.idx exists) or the --out of data prepare (then both
PREFIX_train and PREFIX_val are shown). The sample is decoded with --tokenizer, or with the
tokenizer recorded in the manifest when that file exists.`,
		Example: `  minitron data inspect data/go
  minitron data inspect data/go_val --tokenizer tok.json --sequence 3 --tokens 200`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDataInspect(args[0], o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer to decode the sample (default: the manifest's)")
	f.IntVar(&o.Sequence, "sequence", 0, "which sequence to show")
	f.IntVar(&o.Tokens, "tokens", 64, "how many of its tokens to show")
	return cmd
}

func runDataInspect(prefix string, o *DataInspectOptions, w io.Writer) error {
	prefixes, manifest := data.ResolveDatasetPrefix(prefix)
	if len(prefixes) == 0 {
		return fmt.Errorf("data inspect: neither %s.idx nor %s_train.idx exists", prefix, prefix)
	}
	var tok data.Tokenizer
	tokPath := o.Tokenizer
	if manifest != nil {
		fmt.Fprintf(w, "manifest   %s: %d documents from %d files, tokenizer %s, %d bad inputs skipped\n",
			data.ManifestPath(manifest.Prefix), manifest.Corpus.Documents, manifest.Corpus.Files,
			manifest.Tokenizer.Identity, manifest.Corpus.IssueCount())
		if tokPath == "" {
			tokPath = manifest.Tokenizer.Path
		}
	}
	if tokPath != "" {
		t, err := data.LoadTokenizer(tokPath)
		if err != nil {
			if o.Tokenizer != "" {
				return err
			}
			fmt.Fprintf(w, "(cannot load the manifest's tokenizer: %v; showing ids only)\n", err)
		} else {
			tok = t
		}
	}
	for _, p := range prefixes {
		if err := inspectOne(p, o, tok, w); err != nil {
			return err
		}
	}
	return nil
}

func inspectOne(prefix string, o *DataInspectOptions, tok data.Tokenizer, w io.Writer) error {
	ds, err := data.OpenIndexed(prefix)
	if err != nil {
		return err
	}
	defer ds.Close()
	st := ds.Stats()
	binPath, _ := data.IndexedPaths(prefix)
	fmt.Fprintf(w, "dataset    %s\n", prefix)
	fmt.Fprintf(w, "  dtype      %s (%d bytes/token, %s)\n", ds.DType(), ds.DType().Size(), binPath)
	fmt.Fprintf(w, "  sequences  %d\n  documents  %d\n  tokens     %d\n", ds.NumSequences(), ds.NumDocuments(), ds.NumTokens())
	if ds.NumSequences() > 0 {
		fmt.Fprintf(w, "  length     min %d, mean %.1f, max %d tokens per sequence\n", st.MinLength, st.MeanLength, st.MaxLength)
	}
	if ds.NumSequences() == 0 {
		return nil
	}
	if o.Sequence < 0 || o.Sequence >= ds.NumSequences() {
		return fmt.Errorf("data inspect: --sequence %d out of range [0,%d)", o.Sequence, ds.NumSequences())
	}
	seq, err := ds.Sequence(o.Sequence)
	if err != nil {
		return err
	}
	n := min(max(o.Tokens, 0), len(seq))
	fmt.Fprintf(w, "  sample     sequence %d, first %d of %d tokens\n", o.Sequence, n, len(seq))
	fmt.Fprintf(w, "    ids  %v\n", seq[:n])
	if tok != nil {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = int(seq[i])
		}
		fmt.Fprintf(w, "    text %q\n", tok.Decode(ids))
	}
	return nil
}
