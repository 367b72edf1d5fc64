package main

import (
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

func init() { register(newGenerateCmd) }

// GenerateOptions are the flags of `generate`.
type GenerateOptions struct {
	Model        string
	Prompt       string
	IDs          string
	Tokenizer    string
	NoBOS        bool
	MaxLength    int
	MaxNewTokens int
	Temperature  float64
	TopK         int
	TopP         float64
	Seed         int64
	JSON         bool
	Weights      string
}

func newGenerateCmd() *cobra.Command {
	o := &GenerateOptions{}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate text or token ids from a checkpoint (greedy or sampled, KV cache)",
		Long: `Continue a prompt with the model. --prompt needs a tokenizer (the checkpoint's
tokenizer.json / tokenizer.model, or --tokenizer); --ids takes token ids directly. The
tokenizer's BOS is prepended to a text prompt unless --no-bos. --max-length counts the prompt
too, like Hugging Face's max_length; --max-new-tokens, when set, wins. Generation stops at an
EOS id (generation_config.json's eos_token_id when present, else config.json's).
Temperature 0 is greedy; otherwise tokens are sampled after top-k and top-p filtering, with
--seed making runs reproducible.`,
		Example: `  minitron generate --model ./Minitron-4B --prompt "The capital of France is" --max-length 30
  minitron generate --model ./tiny --ids 2,17,99 --max-new-tokens 20 --json
  minitron generate --model ./tiny --prompt "func main" --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGenerate(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "checkpoint directory (required)")
	f.StringVar(&o.Prompt, "prompt", "", "text prompt (needs a tokenizer)")
	f.StringVar(&o.IDs, "ids", "", "prompt as comma-separated token ids")
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer file or directory (default: the model directory)")
	f.BoolVar(&o.NoBOS, "no-bos", false, "do not prepend the tokenizer's BOS to a text prompt")
	f.IntVar(&o.MaxLength, "max-length", 50, "total length in tokens, prompt included")
	f.IntVar(&o.MaxNewTokens, "max-new-tokens", 0, "new tokens to generate (overrides --max-length)")
	f.Float64Var(&o.Temperature, "temperature", 0, "sampling temperature; 0 = greedy")
	f.IntVar(&o.TopK, "top-k", 0, "sample among the k most likely tokens (0 = all)")
	f.Float64Var(&o.TopP, "top-p", 1, "sample within the top-p probability mass (1 = all)")
	f.Int64Var(&o.Seed, "seed", 0, "sampling seed")
	f.BoolVar(&o.JSON, "json", false, `print {"prompt_ids":…,"new_ids":…,"text":…,"stopped_on_eos":…}`)
	f.StringVar(&o.Weights, "weights", "auto", "weight mode: auto, resident or streaming")
	cmd.MarkFlagsMutuallyExclusive("prompt", "ids")
	cmd.MarkFlagsOneRequired("prompt", "ids")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func runGenerate(o *GenerateOptions, w io.Writer) error {
	var tok data.Tokenizer
	var prompt []int
	if o.Prompt != "" {
		p := o.Tokenizer
		if p == "" {
			p = o.Model
		}
		var err error
		if tok, err = data.LoadTokenizer(p); err != nil {
			return fmt.Errorf("--prompt needs a tokenizer: %w", err)
		}
		if !o.NoBOS && tok.BOS() >= 0 {
			prompt = append(prompt, tok.BOS())
		}
		prompt = append(prompt, tok.Encode(o.Prompt)...)
		if len(prompt) == 0 {
			return fmt.Errorf("--prompt encodes to no tokens")
		}
	} else {
		var err error
		if prompt, err = parseIDs(o.IDs); err != nil {
			return err
		}
	}
	n := o.MaxNewTokens
	if n <= 0 {
		n = o.MaxLength - len(prompt)
		if n <= 0 {
			return fmt.Errorf("--max-length %d leaves no room after the %d-token prompt (use --max-new-tokens)", o.MaxLength, len(prompt))
		}
	}
	m, err := loadModel(o.Model, o.Weights)
	if err != nil {
		return err
	}
	defer m.Close()
	for _, id := range prompt {
		if id >= m.Cfg.VocabSize {
			return fmt.Errorf("prompt token id %d is outside the model's vocabulary of %d (wrong tokenizer?)", id, m.Cfg.VocabSize)
		}
	}
	res, err := m.Generate(prompt, model.GenerateOptions{MaxNewTokens: n, Temperature: o.Temperature,
		TopK: o.TopK, TopP: o.TopP, Seed: o.Seed})
	if err != nil {
		return err
	}
	text := ""
	if tok != nil {
		text = tok.Decode(res.Tokens)
	}
	if o.JSON {
		return printJSON(w, map[string]any{"prompt_ids": prompt, "new_ids": res.Tokens, "text": text, "stopped_on_eos": res.StoppedOnEOS})
	}
	if tok != nil {
		_, err = fmt.Fprintf(w, "%s%s\n", o.Prompt, text)
		return err
	}
	s := ""
	for i, id := range append(append([]int(nil), prompt...), res.Tokens...) {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(id)
	}
	_, err = fmt.Fprintln(w, s)
	return err
}
