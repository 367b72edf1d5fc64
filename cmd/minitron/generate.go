package main

import (
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/eval"
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
	Device       string
	NoTF32       bool
	BF16         bool
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
Temperature 0 (the default) is greedy decoding, so --top-k and --top-p are refused with it
(they would be ignored); a positive temperature samples after top-k and top-p filtering, with
--seed making runs reproducible. The prompt and the new tokens together may not exceed the
model's max_position_embeddings.
--device cuda decodes on GPU 0 (needs the CUDA build): the prompt runs once into a device KV
cache, then one token's forward pass a step. Greedy takes each step's arg-max computed on the
device; sampling downloads the last position's logits and draws on the host exactly as the CPU
does, so with the same --seed both devices give the same tokens up to float32 rounding of the
logits (matrix products use TF32 unless --no-tf32). --bf16 keeps the weight matrices on the GPU
in bf16 only (bf16 products). With --weights auto the host only memory-maps the checkpoint.
The output is the CPU command's.`,
		Example: `  minitron generate --model ./Minitron-4B --prompt "The capital of France is" --max-length 30
  minitron generate --model ./tiny --ids 2,17,99 --max-new-tokens 20 --json
  minitron generate --model ./tiny --prompt "func main" --temperature 0.8 --top-k 40 --top-p 0.95 --seed 1
  bin/minitron-cuda generate --model ./Minitron-4B --prompt "The capital of France is" --max-new-tokens 20 --device cuda --no-tf32`,
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
	f.IntVar(&o.MaxNewTokens, "max-new-tokens", 0, "new tokens to generate (overrides --max-length; 0 = use --max-length)")
	f.Float64Var(&o.Temperature, "temperature", 0, "sampling temperature; 0 = greedy")
	f.IntVar(&o.TopK, "top-k", 0, "sample among the k most likely tokens (0 = all)")
	f.Float64Var(&o.TopP, "top-p", 1, "sample within the top-p probability mass (1 = all)")
	f.Int64Var(&o.Seed, "seed", 0, "sampling seed")
	f.BoolVar(&o.JSON, "json", false, `print {"prompt_ids":…,"new_ids":…,"text":…,"stopped_on_eos":…}`)
	f.StringVar(&o.Weights, "weights", "auto", "weight mode: auto, resident or streaming")
	f.StringVar(&o.Device, "device", "cpu", deviceHelp)
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	f.BoolVar(&o.BF16, "bf16", false, bf16Help)
	cmd.MarkFlagsMutuallyExclusive("prompt", "ids")
	cmd.MarkFlagsOneRequired("prompt", "ids")
	_ = cmd.MarkFlagRequired("model")
	return cmd
}

func runGenerate(o *GenerateOptions, w io.Writer) error {
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if err := checkBF16(o.BF16, dev); err != nil {
		return err
	}
	var tok data.Tokenizer
	var prompt []int
	if o.Prompt != "" {
		p := o.Tokenizer
		if p == "" {
			p = o.Model
		}
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
	} else if prompt, err = parseIDs(o.IDs); err != nil {
		return err
	}
	if o.MaxNewTokens < 0 {
		return fmt.Errorf("--max-new-tokens must be positive, got %d", o.MaxNewTokens)
	}
	n := o.MaxNewTokens
	if n == 0 {
		n = o.MaxLength - len(prompt)
		if n <= 0 {
			return fmt.Errorf("--max-length %d leaves no room after the %d-token prompt (use --max-new-tokens)", o.MaxLength, len(prompt))
		}
	}
	m, err := loadModel(o.Model, deviceWeights(o.Weights, dev))
	if err != nil {
		return err
	}
	defer m.Close()
	for _, id := range prompt {
		if id >= m.Cfg.VocabSize {
			return fmt.Errorf("prompt token id %d is outside the model's vocabulary of %d (wrong tokenizer?)", id, m.Cfg.VocabSize)
		}
	}
	gopt := model.GenerateOptions{MaxNewTokens: n, Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, Seed: o.Seed}
	if err := gopt.Check(prompt); err != nil {
		return err
	}
	// Both devices stop at the model's positions, as the CPU cache does.
	if err := m.Cfg.CheckPositions(0, len(prompt)+n); err != nil {
		return fmt.Errorf("the prompt and the new tokens: %w", err)
	}
	var res *model.GenerateResult
	if dev.IsCUDA() {
		res, err = deviceGenerate(m, prompt, gopt, o.NoTF32, o.BF16)
	} else {
		res, err = m.Generate(prompt, gopt)
	}
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

// deviceGenerate is generate on GPU 0 (eval.DeviceLM.Decode): one row, a
// window wide enough for the whole generation (runGenerate has checked it
// against max_position_embeddings, where the CPU's cache stops too).
func deviceGenerate(m *model.Model, prompt []int, opt model.GenerateOptions, noTF32, bf16 bool) (*model.GenerateResult, error) {
	d, err := eval.NewDeviceLM(m, eval.DeviceOptions{Rows: 1, MaxLen: max(len(prompt)+opt.MaxNewTokens, m.Cfg.MaxPositionEmbeddings),
		NoTF32: noTF32, BF16: bf16})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Decode(prompt, opt)
}
