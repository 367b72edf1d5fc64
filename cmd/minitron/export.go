package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/minitron-dev/minitron/export"
	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

func init() { register(newExportCmd) }

func newExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write a checkpoint for other tools: a clean HF directory in bf16/f16/f32, or GGUF for llama.cpp",
		Long: `Export a checkpoint (any minitron checkpoint: a pruned student, init's output, or a
distill/train checkpoint, whose optimizer.bin and trainer_state.json stay behind) in the forms
serving tools load. The output must not exist; it appears only when complete.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newExportHFCmd(), newExportGGUFCmd())
	return cmd
}

type exportHFFlags struct {
	model, out, dtype, shardSize string
}

func newExportHFCmd() *cobra.Command {
	o := &exportHFFlags{}
	cmd := &cobra.Command{
		Use:   "hf",
		Short: "Cast a checkpoint to a clean Hugging Face directory in bf16, f16 or f32",
		Long: `Write --model's config.json and weights, cast to --dtype, with its tokenizer files and
generation_config.json, as a new Hugging Face checkpoint directory --out. Nothing else is
copied: a distill/train checkpoint's optimizer.bin (twice the weights' size) and
trainer_state.json stay behind. f32 → bf16/f16 rounds to nearest even and halves the bytes;
torch_dtype in config.json names the new dtype.

--out must not exist (an export never writes into or over anything); it is built beside
--out and renamed into place when complete, so an interrupted export leaves nothing.`,
		Example: `  minitron export hf --model runs/distill/checkpoints/step-0004000 --out student-bf16 --dtype bf16
  minitron export hf --model pruned-8b --out pruned-8b-f16 --dtype f16 --shard-size 2GB
  minitron export hf --model student-bf16 --out student-f32 --dtype f32 --shard-size 0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExportHF(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "checkpoint directory to export (required)")
	f.StringVar(&o.out, "out", "", "directory to create (required; must not exist)")
	f.StringVar(&o.dtype, "dtype", "", "stored dtype: bf16, f16 or f32 (required)")
	f.StringVar(&o.shardSize, "shard-size", "5GB", "largest safetensors shard (0: one file)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.MarkFlagRequired("dtype")
	return cmd
}

// exportContext stops an export on Ctrl-C (the partial output is removed);
// a second Ctrl-C kills at once.
func exportContext(ctx context.Context) (context.Context, func()) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	go func() { <-ctx.Done(); stop() }()
	return ctx, stop
}

func runExportHF(ctx context.Context, o *exportHFFlags, w io.Writer) error {
	ctx, stop := exportContext(ctx)
	defer stop()
	dt, err := model.ParseDType(o.dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	shard, err := parseBytes(o.shardSize)
	if err != nil {
		return fmt.Errorf("--shard-size: %w", err)
	}
	res, err := export.HF(ctx, export.HFOptions{Model: o.model, Out: o.out, DType: dt, ShardBytes: shard})
	if err != nil {
		return exportErr(err, o.out)
	}
	fmt.Fprintf(w, "%s (%s): %.2f MB of weights → %.2f MB in %s\n", o.model, res.Config.Family,
		float64(res.SourceBytes)/1e6, float64(res.Bytes)/1e6, strings.ToLower(string(dt)))
	if len(res.TokenizerFiles) > 0 {
		fmt.Fprintf(w, "copied %s\n", strings.Join(res.TokenizerFiles, ", "))
	}
	fmt.Fprintf(w, "wrote %s (%s)\n", o.out, strings.Join(res.Files, ", "))
	return nil
}

type exportGGUFFlags struct {
	model, out, dtype, name string
}

func newExportGGUFCmd() *cobra.Command {
	o := &exportGGUFFlags{}
	cmd := &cobra.Command{
		Use:   "gguf",
		Short: "Write a checkpoint as one GGUF file for llama.cpp (and ollama, LM Studio)",
		Long: `Write --model as a GGUF v3 file --out for llama.cpp: the metadata llama.cpp's
convert_hf_to_gguf.py writes (architecture llama for llama and mistral, nemotron for nemotron;
context length, widths, head counts, key/value length from head_dim — right for pruned students
whose head_dim is not hidden/heads — RoPE base, scaling and nemotron's rotary dimension count,
norm epsilon), tensors under llama.cpp's names and layouts (q/k rows permuted for llama's RoPE,
nemotron's norm weights +1) and the tokenizer: a byte-level BPE tokenizer.json as llama.cpp's
gpt2 vocabulary with its merges and pre-tokenizer (gpt-2, llama-bpe or qwen2 split patterns), a
SentencePiece tokenizer.model as its llama vocabulary with scores and types, and so a
SentencePiece-style tokenizer.json (Llama-2/Mistral layout: byte fallback, spaces as ▁, merges
scored in order); without a tokenizer the file holds none (llama.cpp then takes token ids).
A nemotron whose heads·head_dim ≠ hidden is refused: llama.cpp's nemotron cannot load it.

--dtype stores the matrices as f32, f16, bf16 or q8_0 (blocks of 32 int8 with an f16 scale;
matrices whose rows are not whole blocks fall back to f16, as llama.cpp's converter does);
norms and other 1-D tensors are always f32. --out must not exist; the file is written beside it
and renamed into place when complete.`,
		Example: `  minitron export gguf --model runs/distill/checkpoints/step-0004000 --out student-f16.gguf --dtype f16
  minitron export gguf --model pruned-4b --out pruned-4b-q8_0.gguf --dtype q8_0
  llama-cli -m student-f16.gguf -p "The theory of light"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExportGGUF(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "", "checkpoint directory to export (required)")
	f.StringVar(&o.out, "out", "", "GGUF file to create (required; must not exist)")
	f.StringVar(&o.dtype, "dtype", "f16", "matrix storage: f32, f16, bf16 or q8_0")
	f.StringVar(&o.name, "name", "", "general.name (default: the model directory's name)")
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runExportGGUF(ctx context.Context, o *exportGGUFFlags, w io.Writer) error {
	ctx, stop := exportContext(ctx)
	defer stop()
	dt, err := export.ParseGGUFDType(o.dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	res, err := export.GGUF(ctx, export.GGUFOptions{Model: o.model, Out: o.out, DType: dt, Name: o.name})
	if err != nil {
		return exportErr(err, o.out)
	}
	tok := res.Tokenizer
	if res.Pre != "" {
		tok += " (" + res.Pre + ")"
	}
	fmt.Fprintf(w, "architecture %s, %d tensors in %s, tokenizer %s\n", res.Arch, res.Tensors, dt, tok)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "wrote %s (%.2f MB)\n", o.out, float64(res.Bytes)/1e6)
	return nil
}

// exportErr names the flags behind the library's errors.
func exportErr(err error, out string) error {
	switch {
	case errors.Is(err, export.ErrOutExists):
		return fmt.Errorf("--out %s %w: choose a path that does not exist", out, export.ErrOutExists)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted: nothing written to %s", out)
	}
	msg := err.Error()
	for _, r := range [][2]string{{"Model ", "--model "}, {"Out ", "--out "}, {"DType ", "--dtype "}} {
		if strings.HasPrefix(msg, r[0]) {
			return errors.New(r[1] + strings.TrimPrefix(msg, r[0]))
		}
	}
	return err
}
