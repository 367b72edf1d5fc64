package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"

	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

func init() { register(newInitCmd) }

// InitOptions are the flags of `init`.
type InitOptions struct {
	model.InitOptions
	Arch      string
	BOS, EOS  string
	DType     string
	ShardSize string
	DryRun    bool
}

func newInitCmd() *cobra.Command {
	o := &InitOptions{}
	var sizes []string
	for _, s := range model.InitSizes {
		hd := "hidden/heads"
		if s.HeadDim > 0 {
			hd = strconv.Itoa(s.HeadDim)
		}
		sizes = append(sizes, fmt.Sprintf("  %-15s %2d layers / hidden %4d / %2d heads / %d KV / head_dim %-12s / FFN %5d / vocab %6d   %s",
			s.Name, s.Layers, s.Hidden, s.Heads, s.KVHeads, hd, s.FFN, s.Vocab, s.About))
	}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a random-init checkpoint of any supported architecture and shape",
		Long: `Write a Hugging Face checkpoint directory (config.json + safetensors) with random weights:
a teacher to experiment with, a fixture for tests, or a model to train from scratch with
minitron train. Every minitron command loads it.

--arch picks the architecture (nemotron: LayerNorm1P, squared-ReLU MLP, partial RoPE;
llama: RMSNorm, SwiGLU, full RoPE; mistral: llama's math with an optional --sliding-window;
qwen2: llama's math with q/k/v biases; qwen3: llama's math with an RMSNorm over head_dim on
every query and key head (q_norm, k_norm); both take --sliding-window for every layer).
--size picks a named shape; --layers, --hidden, --heads, --kv-heads, --head-dim, --ffn and
--vocab override any of its dimensions (head_dim is hidden/heads unless given or the size
fixes it). Sizes:
` + strings.Join(sizes, "\n") + `
The large sizes stream to disk one chunk at a time, so they need disk space, not memory
(--dry-run prints the config and parameter count without writing).

--tokenizer copies a tokenizer into the checkpoint: a tokenizer.json or SentencePiece .model
file, or a directory holding one (a checkpoint, minitron tokenizer train's output). The
vocabulary then defaults to the tokenizer's size (--vocab may pad it, never cut it), and
bos_token_id/eos_token_id to its special tokens; --bos and --eos set them (none: no such
token), and must lie inside the vocabulary.

Weights are N(0, --std²) from --seed (the same seed gives the same files); norm weights are
their identity value plus the same noise. --out must not exist or be empty; --overwrite
replaces an existing checkpoint directory (one holding config.json) whole. The output
appears only when complete.`,
		Example: `  minitron init --arch nemotron --out ./tiny
  minitron init --arch llama --size small --tokenizer runs/default/tokenizer --out ./llama-small
  minitron init --arch mistral --layers 4 --hidden 512 --heads 8 --kv-heads 2 --ffn 1536 \
      --sliding-window 256 --tokenizer ./Mistral-7B/tokenizer.model --bos 1 --eos 2 --out ./mistral-mini
  minitron init --arch nemotron --size nemotron-4-15b --dry-run --out ./random-15b
  minitron init --arch nemotron --size minitron-8b --dtype bf16 --out /data/random-8b --overwrite
  minitron init --arch qwen3 --size qwen3-8b --dtype bf16 --dry-run --out ./random-qwen3-8b`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "output checkpoint directory (required; must not exist or be empty)")
	f.BoolVar(&o.Overwrite, "overwrite", false, "replace an existing checkpoint directory at --out")
	f.StringVar(&o.Arch, "arch", "", "architecture: nemotron, llama, mistral, qwen2 or qwen3 (required)")
	f.StringVar(&o.Size, "size", "tiny", "named shape (see above)")
	f.IntVar(&o.Layers, "layers", 0, "decoder layers (default: the size's)")
	f.IntVar(&o.Hidden, "hidden", 0, "hidden size (default: the size's)")
	f.IntVar(&o.Heads, "heads", 0, "attention heads (default: the size's)")
	f.IntVar(&o.KVHeads, "kv-heads", 0, "KV heads, GQA groups (default: the size's; all heads if that does not divide --heads)")
	f.IntVar(&o.HeadDim, "head-dim", 0, "head dimension (default: the size's, else hidden/heads)")
	f.IntVar(&o.FFN, "ffn", 0, "MLP intermediate size (default: the size's)")
	f.IntVar(&o.Vocab, "vocab", 0, "vocabulary size (default: the tokenizer's, else the size's)")
	f.IntVar(&o.MaxPositions, "max-positions", 0, "max_position_embeddings (default: the size's)")
	f.BoolVar(&o.TieEmbeddings, "tie-embeddings", false, "tie lm_head to the embedding")
	f.IntVar(&o.SlidingWindow, "sliding-window", 0, "mistral, qwen2, qwen3: attention window in tokens (0: plain causal)")
	f.Float64Var(&o.RopeTheta, "rope-theta", 10000, "RoPE base")
	f.StringVar(&o.BOS, "bos", "", "bos_token_id, or none (default: the tokenizer's)")
	f.StringVar(&o.EOS, "eos", "", "eos_token_id, a comma list, or none (default: the tokenizer's)")
	f.StringVar(&o.Tokenizer, "tokenizer", "", "tokenizer file or directory to copy in")
	f.StringVar(&o.DType, "dtype", "f32", "stored dtype: f32, bf16 or f16")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the weights")
	f.Float64Var(&o.Std, "std", 0.02, "standard deviation of the weights")
	f.StringVar(&o.ShardSize, "shard-size", "5GB", "largest safetensors shard (0: one file)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the config and parameter count; write nothing")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// parseSpecial reads --bos/--eos: "" (the tokenizer's), none, or ids.
func parseSpecial(flag, s string, many bool) ([]int, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "":
		return nil, nil
	case "none", "-1":
		return []int{}, nil
	}
	parts := strings.Split(s, ",")
	if !many && len(parts) > 1 {
		return nil, fmt.Errorf("%s %q: one token id, or none", flag, s)
	}
	ids := []int{}
	for _, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s %q: want token ids like 2 or 2,3, or none", flag, s)
		}
		ids = append(ids, v)
	}
	return ids, nil
}

func runInit(ctx context.Context, o *InitOptions, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C stops the writing and removes the half-written output; a
	// second one kills at once.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	if o.Arch == "" {
		return fmt.Errorf("--arch is required: nemotron, llama, mistral, qwen2 or qwen3")
	}
	o.Family = model.Family(strings.ToLower(o.Arch))
	var err error
	if o.DType, err = strings.ToLower(o.DType), nil; o.DType != "" {
		if o.InitOptions.DType, err = model.ParseDType(o.DType); err != nil {
			return fmt.Errorf("--dtype: %w", err)
		}
	}
	if o.ShardBytes, err = parseBytes(o.ShardSize); err != nil {
		return fmt.Errorf("--shard-size: %w", err)
	}
	bos, err := parseSpecial("--bos", o.BOS, false)
	if err != nil {
		return err
	}
	switch {
	case bos == nil:
	case len(bos) == 0:
		none := -1
		o.InitOptions.BOS = &none
	default:
		o.InitOptions.BOS = &bos[0]
	}
	if o.InitOptions.EOS, err = parseSpecial("--eos", o.EOS, true); err != nil {
		return err
	}
	if o.DryRun {
		cfg, _, err := model.InitConfig(o.InitOptions)
		if err != nil {
			return err
		}
		printInitSummary(w, cfg, o.InitOptions.DType)
		js, err := cfg.MarshalJSON()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "config.json:\n%s\n", js)
		return nil
	}
	res, err := model.Init(ctx, o.InitOptions)
	if errors.Is(err, model.ErrOutExists) {
		return fmt.Errorf("--out %s %w: choose another directory, or --overwrite to replace the checkpoint there", o.Out, model.ErrOutExists)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: nothing written to %s", o.Out)
	}
	if err != nil {
		return err
	}
	printInitSummary(w, res.Config, o.InitOptions.DType)
	if len(res.TokenizerFiles) > 0 {
		fmt.Fprintf(w, "tokenizer: %s from %s\n", strings.Join(res.TokenizerFiles, ", "), o.Tokenizer)
	}
	fmt.Fprintf(w, "wrote %s (%.1f MB of weights)\n", o.Out, float64(res.Bytes)/1e6)
	return nil
}

func printInitSummary(w io.Writer, c *model.Config, dt model.DType) {
	if dt == "" {
		dt = model.F32
	}
	p := c.ParamCounts()
	special := func(ids []int) string {
		if len(ids) == 0 || ids[0] < 0 {
			return "none"
		}
		return strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]")
	}
	fmt.Fprintf(w, "%s: %d layers, hidden %d, %d heads / %d KV, head_dim %d, FFN %d, vocab %d, tied %v; bos %s, eos %s; %s\n",
		c.Family, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.IntermediateSize, c.VocabSize,
		c.TieWordEmbeddings, special([]int{c.BOSTokenID}), special(c.EOSTokenIDs), dt)
	fmt.Fprintf(w, "%s parameters (%d; %s non-embedding)\n", model.FormatParams(p.Total), p.Total, model.FormatParams(p.NonEmbedding))
}
