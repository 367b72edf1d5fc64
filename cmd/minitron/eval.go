package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/minitron-dev/minitron/eval"
	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

// evalCommands holds the constructors of `eval` subcommands. Each lives in
// its own file and adds itself in init with registerEval, like the top-level
// commands do with register.
var evalCommands []func() *cobra.Command

func registerEval(f func() *cobra.Command) { evalCommands = append(evalCommands, f) }

func init() {
	register(newEvalCmd)
	registerEval(newEvalNLLCmd)
}

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate a checkpoint: token NLL, perplexity, benchmark tasks",
		Long:  `Evaluate a Hugging Face checkpoint (nemotron, llama, mistral, qwen2 or qwen3) with the forward pass of package model.`,
		Example: `  minitron eval nll --model ./tiny --ids 2,17,99,4
  minitron eval nll --model ./tiny --ids 2,17,99,4 --json --logits-out logits.safetensors`,
	}
	for _, f := range evalCommands {
		cmd.AddCommand(f())
	}
	return cmd
}

// EvalNLLOptions are the flags of `eval nll`.
type EvalNLLOptions struct {
	Model     string
	IDs       string
	JSON      bool
	LogitsOut string
	Weights   string
	Device    string
	NoTF32    bool
	BF16      bool
}

func newEvalNLLCmd() *cobra.Command {
	o := &EvalNLLOptions{}
	cmd := &cobra.Command{
		Use:   "nll",
		Short: "Per-position negative log-likelihood of a token sequence",
		Long: `Run one forward pass over the token ids (positions 0..T-1) and print the negative
log-likelihood of each ids[t+1] given ids[..t] (T-1 values, natural log) and their mean.
--json prints exactly {"mean_nll":…,"nll":[…]}. --logits-out writes the [T,V] float32 logits
as a safetensors file (tensor "logits"); that holds them in memory, while the NLL alone is
computed over blocks of the vocabulary. The ids may not exceed the model's
max_position_embeddings, and a non-finite result is an error naming the tensor that holds
NaN or Inf.
--device cuda runs the pass on GPU 0 through the same device path as eval ppl and eval tasks
(eval.DeviceLM: log-probabilities computed on the device in float32); needs the CUDA build.
--bf16 keeps the weight matrices on the GPU in bf16 only (bf16 products).`,
		Example: `  minitron eval nll --model ./Minitron-4B --ids 1,415,2936,9060
  minitron eval nll --model ./tiny --ids 2,17,99,4 --json
  minitron eval nll --model ./tiny --ids 2,17,99,4 --logits-out /tmp/logits.safetensors
  bin/minitron-cuda eval nll --model ./Minitron-4B --ids 1,415,2936,9060 --device cuda`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvalNLL(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Model, "model", "", "checkpoint directory (required)")
	f.StringVar(&o.IDs, "ids", "", "comma-separated token ids, at least 2 (required)")
	f.BoolVar(&o.JSON, "json", false, `print {"mean_nll":…,"nll":[…]}`)
	f.StringVar(&o.LogitsOut, "logits-out", "", "write the [T,V] f32 logits to this .safetensors file")
	f.StringVar(&o.Weights, "weights", "auto", "weight mode: auto, resident (f32 in RAM) or streaming (per layer from the mmap)")
	f.StringVar(&o.Device, "device", "cpu", deviceHelp)
	f.BoolVar(&o.NoTF32, "no-tf32", false, noTF32Help)
	f.BoolVar(&o.BF16, "bf16", false, bf16Help)
	_ = cmd.MarkFlagRequired("model")
	_ = cmd.MarkFlagRequired("ids")
	return cmd
}

// parseIDs parses "1,2, 3" into token ids.
func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("--ids: %q is not an integer token id", f)
		}
		if v < 0 {
			return nil, fmt.Errorf("--ids: negative token id %d", v)
		}
		ids = append(ids, v)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("--ids: no token ids given")
	}
	return ids, nil
}

func runEvalNLL(o *EvalNLLOptions, w io.Writer) error {
	ids, err := parseIDs(o.IDs)
	if err != nil {
		return err
	}
	if len(ids) < 2 {
		return fmt.Errorf("--ids: need at least 2 tokens to score, got %d", len(ids))
	}
	dev, err := parseDevice(o.Device)
	if err != nil {
		return err
	}
	if err := checkBF16(o.BF16, dev); err != nil {
		return err
	}
	m, err := loadModel(o.Model, deviceWeights(o.Weights, dev))
	if err != nil {
		return err
	}
	defer m.Close()
	// Both devices stop at the model's positions, as the CPU forward does.
	if err := m.Cfg.CheckPositions(0, len(ids)); err != nil {
		return fmt.Errorf("--ids: %w", err)
	}
	var nll []float64
	var mean float64
	var logits []float32
	switch {
	case dev.IsCUDA():
		if nll, mean, logits, err = deviceNLL(m, ids, o.LogitsOut != "", o.NoTF32, o.BF16); err != nil {
			return err
		}
	case o.LogitsOut != "":
		if logits, err = m.Forward([][]int{ids}, nil); err != nil {
			return err
		}
		if nll, mean, err = model.SequenceNLL(logits, ids); err != nil {
			return err
		}
	default:
		// Only the NLL is wanted: TokenNLL never holds the [T, V] logits.
		all, err := m.TokenNLL([][]int{ids}, nil)
		if err != nil {
			return err
		}
		nll = all[0]
		for _, v := range nll {
			mean += v
		}
		mean /= float64(len(nll))
	}
	if math.IsNaN(mean) || math.IsInf(mean, 0) {
		return m.ExplainNonFinite("nll")
	}
	if o.LogitsOut != "" {
		src := model.NewMemSource()
		if err := src.SetF32("logits", []int{len(ids), m.Cfg.VocabSize}, logits); err != nil {
			return err
		}
		if _, err := model.WriteSafetensors(o.LogitsOut, src, nil, model.SaveOptions{DType: model.F32}); err != nil {
			return fmt.Errorf("--logits-out: %w", err)
		}
	}
	if o.JSON {
		return printJSON(w, struct {
			MeanNLL float64   `json:"mean_nll"`
			NLL     []float64 `json:"nll"`
		}{mean, nll})
	}
	fmt.Fprintf(w, "mean_nll %.6f  (ppl %.4g, %d predicted tokens)\n", mean, expSafe(mean), len(nll))
	fmt.Fprintf(w, "%8s %10s %12s\n", "position", "token", "nll")
	for t, v := range nll {
		fmt.Fprintf(w, "%8d %10d %12.6f\n", t+1, ids[t+1], v)
	}
	return nil
}

// expSafe is e^x capped below float64 overflow (perplexity display).
func expSafe(x float64) float64 { return math.Exp(min(x, 700)) }

// deviceNLL is eval nll on GPU 0: one device pass over ids, the
// log-probabilities of ids[1:] computed there (eval.DeviceLM.SequenceNLL),
// and the logits downloaded only when asked for.
func deviceNLL(m *model.Model, ids []int, wantLogits, noTF32, bf16 bool) (nll []float64, mean float64, logits []float32, err error) {
	d, err := eval.NewDeviceLM(m, eval.DeviceOptions{Rows: 1, Seq: len(ids), MaxLen: max(len(ids), m.Cfg.MaxPositionEmbeddings), NoTF32: noTF32, BF16: bf16})
	if err != nil {
		return nil, 0, nil, err
	}
	defer d.Close()
	if nll, logits, err = d.SequenceNLL(ids, wantLogits); err != nil {
		return nil, 0, nil, err
	}
	for _, v := range nll {
		mean += v
	}
	return nll, mean / float64(len(nll)), logits, nil
}
