package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/eval"
	"github.com/spf13/cobra"
)

func init() { registerEval(newEvalPPLCmd) }

// EvalPPLOptions are the flags of `eval ppl`.
type EvalPPLOptions struct {
	Model     string
	Data      string
	Text      string
	Tokenizer string
	SeqLen    int
	Stride    int
	Batch     int
	MaxDocs   int
	JSON      bool
	Weights   string
	Device    string
	NoTF32    bool
	BF16      bool
}

func newEvalPPLCmd() *cobra.Command {
	o := &EvalPPLOptions{}
	cmd := &cobra.Command{
		Use:   "ppl",
		Short: "Token loss and perplexity over a dataset or text file (lm-eval rolling windows)",
		Long: `Score every token of a Megatron indexed dataset (--data PREFIX: PREFIX.bin/.idx, or
PREFIX_val when PREFIX is a prepared corpus) or of a text file (--text FILE, one document) with
lm-evaluation-harness's rolling windows: the first token is conditioned on BOS (else EOS),
windows hold at most --seq-len tokens, and each window after the first predicts --stride new
tokens (default: --seq-len, lm-eval's disjoint windows; a smaller stride gives each prediction
more context). Prints the mean token loss (nats) and perplexity; for text also lm-eval's
wikitext metrics: word perplexity, byte perplexity and bits per byte.
--device cuda scores on GPU 0 (eval.DeviceLM: --batch windows per device pass, default as
many as fit 8 GiB of activations); needs the CUDA build. --bf16 keeps the weight
matrices on the GPU in bf16 only (half their f32 memory; bf16 products).`,
		Example: `  minitron eval ppl --model runs/student --text $(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt --seq-len 512
  minitron eval ppl --model runs/student --data runs/data/corpus --seq-len 1024 --stride 512 --json
  bin/minitron-cuda eval ppl --model runs/student --data runs/data/corpus --seq-len 4096 --device cuda`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvalPPL(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "checkpoint directory (required)")
	f.StringVar(&o.Data, "data", "", "Megatron indexed dataset prefix")
	f.StringVar(&o.Text, "text", "", "UTF-8 text file scored as one document")
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer file or directory (default: the model's)")
	f.IntVar(&o.SeqLen, "seq-len", 0, "window length in tokens (required)")
	f.IntVar(&o.Stride, "stride", 0, "new tokens per window (default: --seq-len)")
	f.IntVar(&o.Batch, "batch", 0, "windows scored at once (CPU: default 1, run concurrently on resident weights, helps only with idle cores; cuda: windows per device pass, default sized to memory)")
	f.IntVar(&o.MaxDocs, "max-docs", 0, "score only the first N documents of --data")
	f.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	f.StringVar(&o.Weights, "weights", "auto", "weight mode: auto, resident or streaming")
	f.StringVar(&o.Device, "device", "cpu", deviceHelp)
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	f.BoolVar(&o.BF16, "bf16", false, bf16Help)
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("seq-len")
	return cmd
}

func runEvalPPL(o *EvalPPLOptions, w io.Writer) error {
	if (o.Data == "") == (o.Text == "") {
		return fmt.Errorf("give exactly one of --data PREFIX and --text FILE")
	}
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if err := checkBF16(o.BF16, dev); err != nil {
		return err
	}
	weights := deviceWeights(o.Weights, dev)
	bar := newProgressBar("ppl")
	defer bar.Finish()
	popt := eval.PPLOptions{SeqLen: o.SeqLen, Stride: o.Stride, Batch: o.Batch, Progress: bar.Update}
	var res *eval.PPLResult
	if o.Text != "" {
		b, err := os.ReadFile(o.Text)
		if err != nil {
			return err
		}
		m, tok, err := loadEvalModel(o.Model, o.Tokenizer, weights)
		if err != nil {
			return err
		}
		defer m.Close()
		lm, batch, closeLM, err := eval.NewLM(m, eval.LMOptions{Device: dev, NoTF32: o.NoTF32, BF16: o.BF16, Seq: o.SeqLen, Workers: o.Batch, Rows: o.Batch})
		if err != nil {
			return err
		}
		defer closeLM()
		popt.Batch = batch
		if res, err = eval.TextPerplexity(lm, eval.Encoder{Tok: tok}, []string{string(b)}, popt); err != nil {
			return fmt.Errorf("%s: %w", o.Text, err)
		}
		if !isFinite(res.TokenLoss) {
			return m.ExplainNonFinite("token loss")
		}
		res.Source = o.Text
	} else {
		prefixes, _ := data.ResolveDatasetPrefix(o.Data)
		if len(prefixes) == 0 {
			return fmt.Errorf("--data %s: no %s.idx (nor _train/_val splits)", o.Data, o.Data)
		}
		prefix := prefixes[len(prefixes)-1] // the _val split when there are two
		ds, err := data.OpenIndexed(prefix)
		if err != nil {
			return err
		}
		defer ds.Close()
		m, err := loadModel(o.Model, weights)
		if err != nil {
			return err
		}
		defer m.Close()
		// Condition the first token like lm-eval: the tokenizer's BOS, else
		// EOS; without a tokenizer, the config's ids.
		pfx := -1
		if tok, err := data.LoadTokenizer(firstNonEmpty(o.Tokenizer, o.Model)); err == nil {
			pfx, _ = eval.Encoder{Tok: tok}.PrefixToken()
		}
		if pfx < 0 && m.Cfg.BOSTokenID >= 0 {
			pfx = m.Cfg.BOSTokenID
		}
		if pfx < 0 && len(m.EOS) > 0 {
			pfx = m.EOS[0]
		}
		if pfx < 0 {
			return fmt.Errorf("%s: no BOS or EOS token id to condition the first token on", o.Model)
		}
		n := ds.NumDocuments()
		if o.MaxDocs > 0 {
			n = min(n, o.MaxDocs)
		}
		docs := make([][]int, 0, n)
		for i := 0; i < n; i++ {
			d, err := ds.Document(i)
			if err != nil {
				return err
			}
			ids := make([]int, len(d))
			for j, t := range d {
				if int(t) >= m.Cfg.VocabSize || t < 0 {
					return fmt.Errorf("%s: document %d holds token %d outside the model's vocabulary of %d (dataset made with another tokenizer?)", prefix, i, t, m.Cfg.VocabSize)
				}
				ids[j] = int(t)
			}
			docs = append(docs, ids)
		}
		lm, batch, closeLM, err := eval.NewLM(m, eval.LMOptions{Device: dev, NoTF32: o.NoTF32, BF16: o.BF16, Seq: o.SeqLen, Workers: o.Batch, Rows: o.Batch})
		if err != nil {
			return err
		}
		defer closeLM()
		popt.Batch = batch
		if res, err = eval.TokenPerplexity(lm, docs, pfx, popt); err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
		if !isFinite(res.TokenLoss) {
			return m.ExplainNonFinite("token loss")
		}
		res.Source = prefix
	}
	if o.JSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	fmt.Fprintf(w, "source           %s\n", res.Source)
	fmt.Fprintf(w, "windows          %d (seq-len %d, stride %d) over %d documents\n", res.Windows, res.SeqLen, res.Stride, res.Docs)
	fmt.Fprintf(w, "tokens           %d\n", res.Tokens)
	fmt.Fprintf(w, "token loss       %.6f nats\n", res.TokenLoss)
	fmt.Fprintf(w, "token perplexity %.4f\n", res.TokenPerplexity)
	if res.Bytes > 0 {
		fmt.Fprintf(w, "word perplexity  %.4f (%d words)\n", res.WordPerplexity, res.Words)
		fmt.Fprintf(w, "byte perplexity  %.4f (%d bytes)\n", res.BytePerplexity, res.Bytes)
		fmt.Fprintf(w, "bits per byte    %.6f\n", res.BitsPerByte)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// isFinite reports a number that is neither NaN nor ±Inf: a NaN loss
// printed as a number would exit 0.
func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
