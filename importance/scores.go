package importance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/minitron-dev/minitron/internal/atomicfile"

	"github.com/minitron-dev/minitron/model"
)

// FormatV1 names the scores file format.
const FormatV1 = "minitron-importance/1"

// Identity pins the model a scores file was computed on.
type Identity struct {
	// ConfigSHA256 hashes config.json as re-serialised by model.Config
	// (so key order and formatting do not matter; _name_or_path and
	// transformers_version are ignored).
	ConfigSHA256 string `json:"config_sha256"`
	// TensorsSHA256 hashes every tensor's name, dtype and shape, plus its
	// first and last 16 values, so two checkpoints of the same
	// architecture but different weights differ.
	TensorsSHA256 string `json:"tensors_sha256"`
}

// Equal reports whether two identities name the same model.
func (a Identity) Equal(b Identity) bool {
	return a.ConfigSHA256 == b.ConfigSHA256 && a.TensorsSHA256 == b.TensorsSHA256
}

func (a Identity) String() string {
	short := func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	}
	return "config " + short(a.ConfigSHA256) + ", tensors " + short(a.TensorsSHA256)
}

// ModelIdentity computes the identity of cfg and its weights.
func ModelIdentity(cfg *model.Config, src model.TensorSource) (Identity, error) {
	c := *cfg
	c.Extra = map[string]json.RawMessage{}
	for k, v := range cfg.Extra {
		if k != "_name_or_path" && k != "transformers_version" {
			c.Extra[k] = v
		}
	}
	cj, err := c.MarshalJSON()
	if err != nil {
		return Identity{}, err
	}
	ch := sha256.Sum256(cj)
	h := sha256.New()
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		fmt.Fprintf(h, "%s %s %v\n", name, info.DType, info.Shape)
		if err := fingerprint(h, src, info); err != nil {
			return Identity{}, err
		}
	}
	return Identity{ConfigSHA256: hex.EncodeToString(ch[:]), TensorsSHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func fingerprint(h hash.Hash, src model.TensorSource, info model.TensorInfo) error {
	n := info.NumElements()
	k := min(16, n)
	head, tail := make([]float32, k), make([]float32, k)
	if rr, ok := src.(model.RangeReader); ok {
		if err := rr.ReadF32Range(info.Name, 0, head); err != nil {
			return err
		}
		if err := rr.ReadF32Range(info.Name, n-k, tail); err != nil {
			return err
		}
	} else {
		all := make([]float32, n)
		if err := src.ReadF32(info.Name, all); err != nil {
			return err
		}
		copy(head, all[:k])
		copy(tail, all[n-k:])
	}
	fmt.Fprintf(h, "%v %v\n", head, tail)
	return nil
}

// Shape is the architecture the scores describe.
type Shape struct {
	Layers  int `json:"layers"`
	Hidden  int `json:"hidden"`
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	FFN     int `json:"ffn"`
}

// ShapeOf reads the widths from a config.
func ShapeOf(c *model.Config) Shape {
	return Shape{Layers: c.NumLayers, Hidden: c.HiddenSize, Heads: c.NumHeads, KVHeads: c.NumKVHeads, FFN: c.IntermediateSize}
}

// DataInfo records the calibration data.
type DataInfo struct {
	Prefix  string `json:"prefix,omitempty"`
	Split   string `json:"split,omitempty"`
	Samples int    `json:"samples"`
	SeqLen  int    `json:"seq_len"`
	Seed    int64  `json:"seed"`
	Tokens  int64  `json:"tokens"`
}

// LayerScores are one layer's width scores (higher = more important).
type LayerScores struct {
	Heads   []float64 `json:"heads"`   // per query head
	Groups  []float64 `json:"groups"`  // per KV group: sum of its query heads' scores
	Neurons []float64 `json:"neurons"` // per MLP neuron
}

// BlockDrop is the best contiguous block of K layers to drop under a metric.
type BlockDrop struct {
	K      int     `json:"k"`
	Start  int     `json:"start"`  // first dropped layer
	Metric string  `json:"metric"` // "bi" (smallest summed Block Importance) or "loss"
	Value  float64 `json:"value"`  // summed BI, or the loss with the block dropped
}

// LayerImportance holds depth scores; a metric not computed is empty.
type LayerImportance struct {
	// BI[l] = 1 − mean over tokens of cos(input of layer l, its output).
	BI []float64 `json:"block_importance,omitempty"`
	// BaseLoss is the mean next-token NLL of the full model on the
	// loss samples; DropLoss[l] is the same with layer l skipped.
	BaseLoss    float64     `json:"base_loss,omitempty"`
	DropLoss    []float64   `json:"drop_one_loss,omitempty"`
	LossSamples int         `json:"loss_samples,omitempty"`
	LossSeqLen  int         `json:"loss_seq_len,omitempty"`
	LossData    string      `json:"loss_data,omitempty"` // the split the losses were measured on
	Blocks      []BlockDrop `json:"blocks,omitempty"`
}

// Scores is the content of a scores file.
type Scores struct {
	Format string   `json:"format"`
	Model  Identity `json:"model"`
	Shape  Shape    `json:"shape"`
	// Method is how the width scores were made: "activation" (the
	// Minitron method), "magnitude" (weight norms) or "random".
	Method      string      `json:"method"`
	Aggregation Aggregation `json:"aggregation"`
	MLPPoint    string      `json:"mlp_point,omitempty"` // "pre" or "post" activation
	Data        DataInfo    `json:"data"`
	// Channels are the embedding-channel scores: the aggregated magnitude
	// of every per-layer norm output (input_layernorm and
	// post_attention_layernorm of every layer), summed.
	Channels []float64        `json:"channels"`
	Layers   []LayerScores    `json:"layers"`
	Depth    *LayerImportance `json:"layer_importance,omitempty"`
	// Provenance says how the file was made (Run writes it); files from
	// before it existed, and scores made by other means, have none.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Provenance is where a scores file came from, beyond what Model, Data,
// Aggregation and MLPPoint already record: the checkpoint directory it was
// read from, the device and its precision settings, and the minitron that
// wrote it.
type Provenance struct {
	ModelDir string `json:"model_dir"`
	Device   string `json:"device"` // "cpu" or "cuda"
	NoTF32   bool   `json:"no_tf32,omitempty"`
	BF16     bool   `json:"bf16,omitempty"`
	Batch    int    `json:"batch"`              // samples per forward pass
	Minitron string `json:"minitron,omitempty"` // version; empty when unknown
}

// Validate checks that the scores are complete for their shape.
func (s *Scores) Validate() error {
	if s.Format != FormatV1 {
		return fmt.Errorf("format %q, want %q", s.Format, FormatV1)
	}
	sh := s.Shape
	if sh.Layers <= 0 || sh.Hidden <= 0 || sh.Heads <= 0 || sh.KVHeads <= 0 || sh.FFN <= 0 || sh.Heads%sh.KVHeads != 0 {
		return fmt.Errorf("invalid shape %+v", sh)
	}
	if len(s.Channels) != sh.Hidden {
		return fmt.Errorf("%d channel scores, want %d", len(s.Channels), sh.Hidden)
	}
	if len(s.Layers) != sh.Layers {
		return fmt.Errorf("%d layers of scores, want %d", len(s.Layers), sh.Layers)
	}
	for i, l := range s.Layers {
		if len(l.Heads) != sh.Heads || len(l.Groups) != sh.KVHeads || len(l.Neurons) != sh.FFN {
			return fmt.Errorf("layer %d has %d/%d/%d head/group/neuron scores, want %d/%d/%d",
				i, len(l.Heads), len(l.Groups), len(l.Neurons), sh.Heads, sh.KVHeads, sh.FFN)
		}
	}
	if d := s.Depth; d != nil {
		if len(d.BI) != 0 && len(d.BI) != sh.Layers {
			return fmt.Errorf("%d block-importance values, want %d", len(d.BI), sh.Layers)
		}
		if len(d.DropLoss) != 0 && len(d.DropLoss) != sh.Layers {
			return fmt.Errorf("%d drop-one losses, want %d", len(d.DropLoss), sh.Layers)
		}
		// prune drops layers Start…Start+K−1 as written: a block outside
		// the model would drop layers that do not exist.
		for i, b := range d.Blocks {
			if b.K < 1 || b.K >= sh.Layers {
				return fmt.Errorf("layer_importance.blocks[%d]: k %d must be between 1 and %d (the model has %d layers)", i, b.K, sh.Layers-1, sh.Layers)
			}
			if b.Start < 0 || b.Start+b.K > sh.Layers {
				return fmt.Errorf("layer_importance.blocks[%d]: layers [%d,%d) are outside the %d layers", i, b.Start, b.Start+b.K, sh.Layers)
			}
			if b.Metric != "bi" && b.Metric != "loss" {
				return fmt.Errorf("layer_importance.blocks[%d]: metric %q (want bi or loss)", i, b.Metric)
			}
			if math.IsNaN(b.Value) || math.IsInf(b.Value, 0) {
				return fmt.Errorf("layer_importance.blocks[%d]: value is %v", i, b.Value)
			}
		}
	}
	return nil
}

// CheckModel returns an error unless the scores were computed on a model
// with this identity.
func (s *Scores) CheckModel(id Identity, modelDir string) error {
	if !s.Model.Equal(id) {
		return fmt.Errorf("scores were computed on another model (%s) than %s (%s): rerun minitron importance on it",
			s.Model, modelDir, id)
	}
	return nil
}

// GroupScores sums query-head scores per KV group.
func GroupScores(heads []float64, kvHeads int) []float64 {
	g := make([]float64, kvHeads)
	per := len(heads) / kvHeads
	for h, v := range heads {
		g[h/per] += v
	}
	return g
}

// Save writes the scores as JSON atomically (temp file + rename).
func (s *Scores) Save(path string) error {
	if err := s.checkFinite(); err != nil {
		return fmt.Errorf("%s: %w (non-finite activations: is the model broken?)", path, err)
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), nil)
}

// Load reads and validates a scores file.
func Load(path string) (*Scores, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates scores file bytes.
func Parse(b []byte) (*Scores, error) {
	var s Scores
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("not a scores file: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkFinite(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Scores) checkFinite() error {
	if err := finite("channel", s.Channels); err != nil {
		return err
	}
	for l, ls := range s.Layers {
		for _, v := range []struct {
			what string
			v    []float64
		}{{"head", ls.Heads}, {"group", ls.Groups}, {"neuron", ls.Neurons}} {
			if err := finite(fmt.Sprintf("layer %d %s", l, v.what), v.v); err != nil {
				return err
			}
		}
	}
	if d := s.Depth; d != nil {
		if err := finite("block importance", d.BI); err != nil {
			return err
		}
		if err := finite("drop-one loss", d.DropLoss); err != nil {
			return err
		}
	}
	return nil
}

// finite rejects NaN and ±Inf, which would make rankings arbitrary.
func finite(what string, v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("%s score %d is %v", what, i, x)
		}
	}
	return nil
}

// ParseLayerMetrics parses "bi,loss" style lists.
func ParseLayerMetrics(s string) (bi, loss bool, err error) {
	for _, m := range strings.Split(s, ",") {
		switch strings.TrimSpace(strings.ToLower(m)) {
		case "":
		case "bi":
			bi = true
		case "loss":
			loss = true
		case "none":
		default:
			return false, false, fmt.Errorf("unknown layer metric %q (want bi, loss or none)", m)
		}
	}
	return bi, loss, nil
}

// Rank returns indices sorted by descending score (ties: lower index first).
func Rank(scores []float64) []int {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	return idx
}
