package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/minitron-dev/minitron/model"
	"github.com/spf13/cobra"
)

func init() { register(newInspectCmd) }

// InspectOptions are the arguments of `inspect`.
type InspectOptions struct {
	Dir  string
	JSON bool
}

// InspectReport is what `inspect` prints (and its --json form).
type InspectReport struct {
	Dir           string   `json:"dir"`
	Family        string   `json:"family"`
	Architectures []string `json:"architectures,omitempty"`
	Layers        int      `json:"layers"`
	Hidden        int      `json:"hidden_size"`
	Heads         int      `json:"heads"`
	KVHeads       int      `json:"kv_heads"`
	HeadDim       int      `json:"head_dim"`
	FFN           int      `json:"ffn"`
	Vocab         int      `json:"vocab"`
	RotaryDim     int      `json:"rotary_dim"`
	RopeTheta     float64  `json:"rope_theta"`
	SlidingWindow int      `json:"sliding_window"`
	Tied          bool     `json:"tied_embeddings"`
	NormBias      bool     `json:"norm_bias"`
	// AttnBiases lists the attention projections with a bias (q,k,v for
	// qwen2; q,k,v,o under attention_bias), "" when none.
	AttnBiases          string         `json:"attention_biases,omitempty"`
	MLPBias             bool           `json:"mlp_bias,omitempty"`
	QKNorm              bool           `json:"qk_norm,omitempty"` // qwen3's q_norm/k_norm
	Params              int64          `json:"params"`
	EmbeddingParams     int64          `json:"embedding_params"`
	NonEmbeddingParams  int64          `json:"non_embedding_params"`
	DTypes              map[string]int `json:"dtypes"`
	Tensors             int            `json:"tensors"`
	UnexpectedTensors   []string       `json:"unexpected_tensors,omitempty"`
	Files               int            `json:"files"`
	BytesOnDisk         int64          `json:"bytes_on_disk"`
	ConfigParams        int64          `json:"config_params"`
	ConfigParamsDiffers bool           `json:"config_params_differs,omitempty"`
}

func newInspectCmd() *cobra.Command {
	o := &InspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect DIR",
		Short: "Show a checkpoint's architecture, parameter counts, dtypes and size",
		Long: `inspect opens a Hugging Face checkpoint directory (config.json plus model.safetensors or a
sharded model.safetensors.index.json), validates every tensor against the config, and prints
the family, dimensions, parameter counts (embedding = embed_tokens + lm_head when untied),
tensor dtypes and bytes on disk. Weights are memory-mapped, not read.`,
		Example: `  minitron inspect ./Minitron-4B-Base
  minitron inspect ./student --json | jq .params`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = args[0]
			return runInspect(o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON instead of text")
	return cmd
}

// Inspect opens dir and summarises it.
func Inspect(dir string) (*InspectReport, error) {
	ck, err := model.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	c := ck.Config()
	pc := model.CountParams(ck)
	cp := c.ParamCounts()
	r := &InspectReport{
		Dir: dir, Family: string(c.Family), Architectures: c.Architectures,
		Layers: c.NumLayers, Hidden: c.HiddenSize, Heads: c.NumHeads, KVHeads: c.NumKVHeads,
		HeadDim: c.HeadDim, FFN: c.IntermediateSize, Vocab: c.VocabSize, RotaryDim: c.RotaryDim(),
		RopeTheta: c.RopeTheta, SlidingWindow: c.SlidingWindow, Tied: c.TieWordEmbeddings,
		NormBias: ck.HasNormBias(),
		Params:   pc.Total, EmbeddingParams: pc.Embedding, NonEmbeddingParams: pc.NonEmbedding,
		DTypes: map[string]int{}, Tensors: len(ck.Names()), UnexpectedTensors: ck.Unexpected(),
		Files: len(ck.Files()), BytesOnDisk: ck.BytesOnDisk(), ConfigParams: cp.Total,
	}
	// Nemotron without norm biases stores fewer parameters than the config
	// formula (which assumes HF's biased LayerNorm1P); say so rather than
	// print two different totals silently.
	r.ConfigParamsDiffers = cp.Total != pc.Total
	switch {
	case c.QKVBias() && c.OBias():
		r.AttnBiases = "q,k,v,o"
	case c.QKVBias():
		r.AttnBiases = "q,k,v"
	}
	r.MLPBias, r.QKNorm = c.MLPBias, c.QKNorm()
	for dt, n := range ck.DTypeCounts() {
		r.DTypes[string(dt)] = n
	}
	return r, nil
}

func runInspect(o *InspectOptions, w io.Writer) error {
	r, err := Inspect(o.Dir)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	window := "none (causal)"
	if r.SlidingWindow > 0 {
		window = fmt.Sprint(r.SlidingWindow)
	}
	var dts []string
	for dt, n := range r.DTypes {
		dts = append(dts, fmt.Sprintf("%s×%d", dt, n))
	}
	sort.Strings(dts)
	fmt.Fprintf(w, "checkpoint    %s\n", r.Dir)
	arch := ""
	if len(r.Architectures) > 0 {
		arch = " (" + strings.Join(r.Architectures, ", ") + ")"
	}
	fmt.Fprintf(w, "family        %s%s\n", r.Family, arch)
	fmt.Fprintf(w, "layers        %d\n", r.Layers)
	fmt.Fprintf(w, "hidden        %d\n", r.Hidden)
	fmt.Fprintf(w, "heads         %d (kv %d, head_dim %d, q width %d)\n", r.Heads, r.KVHeads, r.HeadDim, r.Heads*r.HeadDim)
	if r.AttnBiases != "" || r.QKNorm {
		var parts []string
		if r.AttnBiases != "" {
			parts = append(parts, "biases on "+r.AttnBiases)
		}
		if r.QKNorm {
			parts = append(parts, "RMSNorm over head_dim on q and k (q_norm, k_norm)")
		}
		fmt.Fprintf(w, "attention     %s\n", strings.Join(parts, "; "))
	}
	fmt.Fprintf(w, "ffn           %d", r.FFN)
	if r.MLPBias {
		fmt.Fprint(w, " (with biases)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "vocab         %d\n", r.Vocab)
	fmt.Fprintf(w, "rotary dim    %d of %d (theta %g)\n", r.RotaryDim, r.HeadDim, r.RopeTheta)
	fmt.Fprintf(w, "window        %s\n", window)
	fmt.Fprintf(w, "tied          %v\n", r.Tied)
	fmt.Fprintf(w, "params        %s (%d)\n", model.FormatParams(r.Params), r.Params)
	fmt.Fprintf(w, "  embedding   %s (%d)\n", model.FormatParams(r.EmbeddingParams), r.EmbeddingParams)
	fmt.Fprintf(w, "  non-embed   %s (%d)\n", model.FormatParams(r.NonEmbeddingParams), r.NonEmbeddingParams)
	if r.ConfigParamsDiffers {
		fmt.Fprintf(w, "  (config formula gives %d)\n", r.ConfigParams)
	}
	fmt.Fprintf(w, "tensors       %d (%s)\n", r.Tensors, strings.Join(dts, ", "))
	if len(r.UnexpectedTensors) > 0 {
		fmt.Fprintf(w, "unexpected    %d tensors not used by the config: %s\n", len(r.UnexpectedTensors), strings.Join(r.UnexpectedTensors, ", "))
	}
	fmt.Fprintf(w, "on disk       %s in %d file(s)\n", humanBytes(r.BytesOnDisk), r.Files)
	return nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
