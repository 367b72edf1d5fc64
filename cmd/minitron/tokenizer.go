package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/data"
	"github.com/spf13/cobra"
)

func init() { register(newTokenizerCmd) }

func newTokenizerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokenizer",
		Short: "Encode, decode and train tokenizers",
		Long: `Work with tokenizers: SentencePiece .model files (BPE and Unigram, as Nemotron and
Llama-2 ship), Hugging Face tokenizer.json BPE (byte-level like GPT-2/Llama-3, or
SentencePiece-style with byte fallback), and byte-level BPE tokenizers trained here.
--tokenizer takes a file or a model directory (tokenizer.json first, else tokenizer.model,
GPT-2's vocab.json + merges.txt, or the directory's only *.model file).`,
		Example: `  minitron tokenizer train --builtin go-src --vocab-size 8192 --out tok/go8k
  minitron tokenizer encode --tokenizer tok/go8k --text 'func main() {}'
  minitron tokenizer decode --tokenizer tok/go8k --ids 5,17,300`,
	}
	cmd.AddCommand(newTokenizerInfoCmd(), newTokenizerEncodeCmd(), newTokenizerDecodeCmd(), newTokenizerTrainCmd())
	return cmd
}

// TokenizerInfoOptions are the flags of `tokenizer info`.
type TokenizerInfoOptions struct {
	Tokenizer string
	JSON      bool
}

func newTokenizerInfoCmd() *cobra.Command {
	o := &TokenizerInfoOptions{}
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print a tokenizer's kind, vocabulary size and special tokens",
		Example: `  minitron tokenizer info --tokenizer ./Minitron-4B
  minitron tokenizer info --tokenizer tok/go8k/tokenizer.json --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTokenizerInfo(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer.json, .model file or model directory (required)")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("tokenizer")
	return cmd
}

func runTokenizerInfo(o *TokenizerInfoOptions, w io.Writer) error {
	tok, err := data.LoadTokenizer(o.Tokenizer)
	if err != nil {
		return err
	}
	info := map[string]any{"identity": tok.Identity(), "vocab_size": tok.VocabSize(),
		"bos": tok.BOS(), "eos": tok.EOS(), "pad": tok.PAD(), "unk": tok.UNK()}
	names := map[string]string{}
	for _, k := range []string{"bos", "eos", "pad", "unk"} {
		if id := info[k].(int); id >= 0 {
			names[k] = data.TokenString(tok, id)
		}
	}
	if sp, ok := tok.(*data.SentencePiece); ok {
		info["normalizer"] = sp.Normalizer.Name
		info["byte_fallback"] = sp.Trainer.ByteFallback
	}
	var warnings []string
	if w, ok := tok.(interface{ Warnings() []string }); ok {
		warnings = w.Warnings()
		if len(warnings) > 0 {
			info["warnings"] = warnings
		}
	}
	if o.JSON {
		info["special_tokens"] = names
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	fmt.Fprintf(w, "%s\n  vocab size %d\n", tok.Identity(), tok.VocabSize())
	for _, k := range []string{"bos", "eos", "pad", "unk"} {
		if id := info[k].(int); id >= 0 {
			fmt.Fprintf(w, "  %s %d %q\n", k, id, names[k])
		} else {
			fmt.Fprintf(w, "  %s none\n", k)
		}
	}
	if sp, ok := tok.(*data.SentencePiece); ok {
		fmt.Fprintf(w, "  normalizer %q, byte_fallback %v\n", sp.Normalizer.Name, sp.Trainer.ByteFallback)
	}
	for _, s := range warnings {
		fmt.Fprintf(w, "  warning: %s\n", s)
	}
	return nil
}

// TokenizerEncodeOptions are the flags of `tokenizer encode`.
type TokenizerEncodeOptions struct {
	Tokenizer string
	Text      string
	File      string
	JSON      bool
	Pieces    bool
	BOS, EOS  bool
}

func newTokenizerEncodeCmd() *cobra.Command {
	o := &TokenizerEncodeOptions{}
	cmd := &cobra.Command{
		Use:   "encode",
		Short: "Print the token ids of a text",
		Long: `Print the token ids of --text or of the contents of --file (use - for stdin), comma
separated, or as JSON with --json ({"ids": [...], "tokens": N, "bytes": N}). No BOS/EOS
is added unless --bos/--eos asks for it; --bos adds nothing for a tokenizer without BOS
(tokenizer_config.json "bos_token": null, as Qwen's).`,
		Example: `  minitron tokenizer encode --tokenizer ./Minitron-4B --text 'Hello world'
  minitron tokenizer encode --tokenizer tok.model --file notes.txt --json
  echo hi | minitron tokenizer encode --tokenizer tok.json --file - --bos
  minitron tokenizer encode --tokenizer tok.json --text 'x := 1' --pieces`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTokenizerEncode(o, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer.json, .model file or model directory (required)")
	f.StringVar(&o.Text, "text", "", "text to encode")
	f.StringVar(&o.File, "file", "", "file to encode (- for stdin)")
	f.BoolVar(&o.JSON, "json", false, "print JSON instead of comma-separated ids")
	f.BoolVar(&o.Pieces, "pieces", false, "print one 'id<TAB>token' line per token (the vocabulary strings)")
	f.BoolVar(&o.BOS, "bos", false, "prepend the tokenizer's BOS id (nothing when it has none, e.g. Qwen)")
	f.BoolVar(&o.EOS, "eos", false, "append the tokenizer's EOS id")
	_ = cmd.MarkFlagRequired("tokenizer")
	return cmd
}

func runTokenizerEncode(o *TokenizerEncodeOptions, stdin io.Reader, w io.Writer) error {
	if (o.Text == "") == (o.File == "") {
		return fmt.Errorf("tokenizer encode: give exactly one of --text or --file")
	}
	tok, err := data.LoadTokenizer(o.Tokenizer)
	if err != nil {
		return err
	}
	text := o.Text
	if o.File != "" {
		var b []byte
		if o.File == "-" {
			b, err = io.ReadAll(stdin)
		} else {
			b, err = os.ReadFile(o.File)
		}
		if err != nil {
			return err
		}
		text = string(b)
	}
	var ids []int
	// A tokenizer without BOS (Qwen's "bos_token": null) gets nothing, as
	// HF's add_special_tokens gives: there is no token to stand in for it.
	if o.BOS && tok.BOS() >= 0 {
		ids = append(ids, tok.BOS())
	}
	ids = append(ids, tok.Encode(text)...)
	if o.EOS {
		if tok.EOS() < 0 {
			return fmt.Errorf("tokenizer encode: --eos: %s has no EOS token", o.Tokenizer)
		}
		ids = append(ids, tok.EOS())
	}
	if o.Pieces {
		for _, id := range ids {
			if _, err := fmt.Fprintf(w, "%d\t%q\n", id, data.TokenString(tok, id)); err != nil {
				return err
			}
		}
		return nil
	}
	if o.JSON {
		if ids == nil {
			ids = []int{}
		}
		b, _ := json.Marshal(map[string]any{"ids": ids, "tokens": len(ids), "bytes": len(text), "tokenizer": tok.Identity()})
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	_, err = fmt.Fprintln(w, strings.Join(s, ","))
	return err
}

// TokenizerDecodeOptions are the flags of `tokenizer decode`.
type TokenizerDecodeOptions struct {
	Tokenizer string
	IDs       string
}

func newTokenizerDecodeCmd() *cobra.Command {
	o := &TokenizerDecodeOptions{}
	cmd := &cobra.Command{
		Use:   "decode",
		Short: "Print the text of token ids",
		Long:  `Print the text of --ids (comma or space separated). Special/control tokens print nothing.`,
		Example: `  minitron tokenizer decode --tokenizer ./Minitron-4B --ids 1,15043,3186
  minitron tokenizer decode --tokenizer tok.json --ids "$(minitron tokenizer encode --tokenizer tok.json --text hi)"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTokenizerDecode(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer.json, .model file or model directory (required)")
	f.StringVar(&o.IDs, "ids", "", "token ids, e.g. 1,2,3 (required)")
	_ = cmd.MarkFlagRequired("tokenizer")
	_ = cmd.MarkFlagRequired("ids")
	return cmd
}

func runTokenizerDecode(o *TokenizerDecodeOptions, w io.Writer) error {
	tok, err := data.LoadTokenizer(o.Tokenizer)
	if err != nil {
		return err
	}
	var ids []int
	for _, f := range strings.FieldsFunc(o.IDs, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		id, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("tokenizer decode: --ids: %q is not an integer", f)
		}
		if id < 0 || id >= tok.VocabSize() {
			return fmt.Errorf("tokenizer decode: id %d out of range [0,%d)", id, tok.VocabSize())
		}
		ids = append(ids, id)
	}
	_, err = fmt.Fprintln(w, tok.Decode(ids))
	return err
}

// TokenizerTrainOptions are the flags of `tokenizer train`.
type TokenizerTrainOptions struct {
	Inputs    []string
	Glob      string
	Builtin   string
	JSONLKey  string
	VocabSize int
	Out       string
	Pattern   string
	Special   []string
	MinFreq   int
	Workers   int
	Overwrite bool
}

func newTokenizerTrainCmd() *cobra.Command {
	o := &TokenizerTrainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a byte-level BPE tokenizer and write tokenizer.json",
		Long: `Train a byte-level BPE tokenizer (GPT-2 style) on files, directories, JSONL or a built-in
corpus, and write OUT/tokenizer.json and OUT/tokenizer_config.json, which Hugging Face
transformers (PreTrainedTokenizerFast) and every minitron command load, plus GPT-2's
vocab.json and merges.txt (for Megatron-LM's GPT2BPETokenizer). Training is
deterministic: the most frequent pair merges first, ties broken by the pair's bytes.
Special tokens get the first ids: <|endoftext|> (EOS, also used as BOS) and <|pad|>.
Built-in corpora: go-src (every .go file of the Go installation, ~tens of MB) and opticks.
Tokenizer files already in --out (a checkpoint directory's own) are refused before training
unless --overwrite; the four files are published together.`,
		Example: `  minitron tokenizer train --builtin go-src --vocab-size 8192 --out tok/go8k
  minitron tokenizer train --input ~/code --glob '*.go' --vocab-size 16000 --out tok/code --pattern llama3
  minitron tokenizer train --input books/ notes.txt --builtin opticks --vocab-size 4096 --out tok/books`,
		// Extra arguments are more inputs, so --input a b c works.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Inputs = append(o.Inputs, args...)
			return runTokenizerTrain(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.Inputs, "input", nil, "file or directory to read (repeatable; extra arguments are inputs too)")
	f.StringVar(&o.Glob, "glob", "", "only files in directories whose base name matches, e.g. '*.go'")
	f.StringVar(&o.Builtin, "builtin", "", "built-in corpus: go-src or opticks")
	f.StringVar(&o.JSONLKey, "jsonl-key", "text", "field of each JSONL line that holds the document")
	f.IntVar(&o.VocabSize, "vocab-size", 8192, "vocabulary size including 256 bytes and special tokens")
	f.StringVar(&o.Out, "out", "", "output directory (required)")
	f.StringVar(&o.Pattern, "pattern", "gpt2", "pre-tokenizer split: gpt2 or llama3")
	f.StringSliceVar(&o.Special, "special", []string{"<|endoftext|>", "<|pad|>"}, "special tokens, first ids (first is EOS/BOS)")
	f.IntVar(&o.MinFreq, "min-frequency", 2, "do not merge pairs seen fewer times")
	f.IntVar(&o.Workers, "workers", 0, "pre-tokenizing goroutines (default: all cores)")
	f.BoolVar(&o.Overwrite, "overwrite", false, "replace tokenizer files already in --out (e.g. a checkpoint's own)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runTokenizerTrain(o *TokenizerTrainOptions, w io.Writer) error {
	if len(o.Inputs) == 0 && o.Builtin == "" {
		return fmt.Errorf("tokenizer train: give --input PATH or --builtin go-src|opticks")
	}
	if len(o.Special) == 0 {
		return fmt.Errorf("tokenizer train: need at least one --special token (the EOS)")
	}
	// Refuse an existing tokenizer (a checkpoint's own) before training.
	if !o.Overwrite {
		if err := data.CheckTrainedDir(o.Out); err != nil {
			return fmt.Errorf("--out: %w (pass --overwrite)", err)
		}
	}
	start := time.Now()
	var rep *data.CorpusReport
	var walkErr error
	texts := func(yield func(string) bool) {
		stop := fmt.Errorf("stopped")
		rep, walkErr = data.WalkDocuments(data.CorpusOptions{Inputs: o.Inputs, Builtin: o.Builtin, Glob: o.Glob,
			JSONLKey: o.JSONLKey}, func(d data.Document) error {
			if !yield(d.Text) {
				return stop
			}
			return nil
		})
		if walkErr == stop {
			walkErr = nil
		}
	}
	var counted time.Time
	bar := newProgressBar("merges")
	res, err := data.TrainBPE(texts, data.TrainOptions{
		VocabSize: o.VocabSize, SpecialTokens: o.Special, EOS: o.Special[0], BOS: o.Special[0],
		PAD: pickPad(o.Special), Pattern: o.Pattern, MinFrequency: o.MinFreq, Workers: o.Workers,
		Progress: func(done, want int64) {
			if counted.IsZero() { // the first report comes when counting is done
				counted = time.Now()
			}
			bar.Update(done, want)
		},
	})
	bar.Finish()
	if walkErr != nil {
		return walkErr
	}
	if err != nil {
		return err
	}
	if err := res.WriteDir(o.Out, o.Overwrite); err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(w, "trained %d tokens (%d merges) on %d documents, %.1f MB, %d words (%d unique) in %s (counting %s)\n",
		len(res.Tokens), len(res.Merges), rep.Documents, float64(rep.Bytes)/1e6, res.TotalWords, res.Words,
		el.Round(time.Millisecond), counted.Sub(start).Round(time.Millisecond))
	if len(res.Tokens) < o.VocabSize {
		fmt.Fprintf(w, "  stopped early: no pair occurs %d times\n", o.MinFreq)
	}
	if n := rep.IssueCount(); n > 0 {
		fmt.Fprintf(w, "  skipped %d bad inputs\n", n)
	}
	fmt.Fprintf(w, "  wrote %s/{tokenizer.json,tokenizer_config.json,vocab.json,merges.txt}\n", o.Out)
	return nil
}

func pickPad(special []string) string {
	for _, s := range special {
		if strings.Contains(strings.ToLower(s), "pad") {
			return s
		}
	}
	return ""
}
