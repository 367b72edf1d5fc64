package prune

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/minitron-dev/minitron/model"
)

// Plan says what survives on every axis, in the teacher's numbering. The
// same number of heads, groups and neurons is kept in every layer (the
// Minitron rule), but which ones may differ per layer.
type Plan struct {
	Hidden []int `json:"hidden"` // kept embedding channels, ascending
	Layers []int `json:"layers"` // kept layers, ascending
	// Per teacher layer (len = teacher layers; entries of dropped layers are
	// ignored). Groups are the kept KV groups, ascending; Heads the kept
	// query heads, listed group by group in Groups order, ascending within a
	// group, the same number per group; FFN the kept neurons, ascending.
	Groups [][]int `json:"groups"`
	Heads  [][]int `json:"heads"`
	FFN    [][]int `json:"ffn"`
	// Folds (optional, per teacher layer) fold pruned query heads into kept
	// ones of the same KV group (--residual-heads).
	Folds [][]HeadFold `json:"folds,omitempty"`
}

// HeadFold adds the o_proj columns of pruned heads From to those of the
// kept head Into (teacher numbering): the pruned heads share Into's values
// (same KV group), so their output is approximated by Into's.
type HeadFold struct {
	Into int   `json:"into"`
	From []int `json:"from"`
}

// StudentConfig is the teacher's config with the plan's widths; head_dim is
// kept (written explicitly by Config.MarshalJSON).
func (p *Plan) StudentConfig(teacher *model.Config) *model.Config {
	c := *teacher
	c.HiddenSize = len(p.Hidden)
	c.NumLayers = len(p.Layers)
	l0 := p.Layers[0]
	c.NumHeads = len(p.Heads[l0])
	c.NumKVHeads = len(p.Groups[l0])
	c.IntermediateSize = len(p.FFN[l0])
	return &c
}

// Validate checks that the plan is consistent with the teacher: indices in
// range, ascending, no duplicates, equal widths per layer, heads grouped
// under kept KV groups.
func (p *Plan) Validate(t *model.Config) error {
	if err := checkIndices("hidden", p.Hidden, t.HiddenSize); err != nil {
		return err
	}
	if err := checkIndices("layers", p.Layers, t.NumLayers); err != nil {
		return err
	}
	if len(p.Groups) != t.NumLayers || len(p.Heads) != t.NumLayers || len(p.FFN) != t.NumLayers {
		return fmt.Errorf("plan: per-layer lists must have %d entries (one per teacher layer)", t.NumLayers)
	}
	gsize := t.NumHeads / t.NumKVHeads
	l0 := p.Layers[0]
	nG, nH, nF := len(p.Groups[l0]), len(p.Heads[l0]), len(p.FFN[l0])
	if nG == 0 || nH == 0 || nF == 0 {
		return fmt.Errorf("plan: layer %d keeps no heads, groups or neurons", l0)
	}
	if nH%nG != 0 {
		return fmt.Errorf("plan: %d heads are not a multiple of %d KV groups", nH, nG)
	}
	per := nH / nG
	for _, l := range p.Layers {
		if len(p.Groups[l]) != nG || len(p.Heads[l]) != nH || len(p.FFN[l]) != nF {
			return fmt.Errorf("plan: layer %d keeps %d/%d/%d groups/heads/neurons, layer %d keeps %d/%d/%d: widths must match",
				l, len(p.Groups[l]), len(p.Heads[l]), len(p.FFN[l]), l0, nG, nH, nF)
		}
		if err := checkIndices(fmt.Sprintf("layer %d groups", l), p.Groups[l], t.NumKVHeads); err != nil {
			return err
		}
		if err := checkIndices(fmt.Sprintf("layer %d ffn", l), p.FFN[l], t.IntermediateSize); err != nil {
			return err
		}
		for gi, g := range p.Groups[l] {
			hs := p.Heads[l][gi*per : (gi+1)*per]
			if err := checkIndices(fmt.Sprintf("layer %d heads of group %d", l, g), hs, t.NumHeads); err != nil {
				return err
			}
			for _, h := range hs {
				if h/gsize != g {
					return fmt.Errorf("plan: layer %d head %d does not belong to KV group %d", l, h, g)
				}
			}
		}
	}
	return nil
}

func checkIndices(what string, idx []int, n int) error {
	if len(idx) == 0 {
		return fmt.Errorf("plan: %s keeps nothing", what)
	}
	for i, v := range idx {
		if v < 0 || v >= n {
			return fmt.Errorf("plan: %s index %d out of range [0,%d)", what, v, n)
		}
		if i > 0 && v <= idx[i-1] {
			return fmt.Errorf("plan: %s indices must be ascending without repeats", what)
		}
	}
	return nil
}

// IdentityPlan keeps everything (pruning to the teacher's own shape).
func IdentityPlan(t *model.Config) *Plan {
	p := &Plan{Hidden: seq(t.HiddenSize), Layers: seq(t.NumLayers)}
	for l := 0; l < t.NumLayers; l++ {
		p.Groups = append(p.Groups, seq(t.NumKVHeads))
		p.Heads = append(p.Heads, seq(t.NumHeads))
		p.FFN = append(p.FFN, seq(t.IntermediateSize))
	}
	return p
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// axis says how one tensor dimension is cut.
type axis int

const (
	axAll    axis = iota // keep everything
	axHidden             // embedding channels
	axHeads              // query heads × head_dim
	axGroups             // KV groups × head_dim
	axFFN                // MLP neurons
)

// tensorRule: how rows and columns of a per-layer tensor (by suffix) are cut.
type tensorRule struct{ rows, cols axis }

var layerRules = map[string]tensorRule{
	"input_layernorm.weight":          {axHidden, axAll},
	"input_layernorm.bias":            {axHidden, axAll},
	"post_attention_layernorm.weight": {axHidden, axAll},
	"post_attention_layernorm.bias":   {axHidden, axAll},
	"self_attn.q_proj.weight":         {axHeads, axHidden},
	"self_attn.q_proj.bias":           {axHeads, axAll},
	"self_attn.k_proj.weight":         {axGroups, axHidden},
	"self_attn.k_proj.bias":           {axGroups, axAll},
	"self_attn.v_proj.weight":         {axGroups, axHidden},
	"self_attn.v_proj.bias":           {axGroups, axAll},
	"self_attn.o_proj.weight":         {axHidden, axHeads},
	"self_attn.o_proj.bias":           {axHidden, axAll},
	// qwen3's per-head RMSNorm weights [head_dim]: every kept head uses them
	// whole (head_dim never changes).
	"self_attn.q_norm.weight": {axAll, axAll},
	"self_attn.k_norm.weight": {axAll, axAll},
	"mlp.up_proj.weight":      {axFFN, axHidden},
	"mlp.up_proj.bias":        {axFFN, axAll},
	"mlp.gate_proj.weight":    {axFFN, axHidden},
	"mlp.gate_proj.bias":      {axFFN, axAll},
	"mlp.down_proj.weight":    {axHidden, axFFN},
	"mlp.down_proj.bias":      {axHidden, axAll},
}

var globalRules = map[string]tensorRule{
	"model.embed_tokens.weight": {axAll, axHidden},
	"lm_head.weight":            {axAll, axHidden},
	"model.norm.weight":         {axHidden, axAll},
	"model.norm.bias":           {axHidden, axAll},
}

var layerName = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)

// harmless buffers that exports sometimes carry; they are dropped.
var droppable = regexp.MustCompile(`(^|\.)rotary_emb\.inv_freq$|\.masked_bias$|\.attn\.bias$`)

type sliceSpec struct {
	info       model.TensorInfo // output name, dtype, shape
	from       string           // teacher tensor
	rows, cols []int            // kept indices, nil = all
	srcCols    int
	scale      float32  // multiplies every value when non-zero
	addCols    [][2]int // (output column, source column) pairs added after gathering
}

// SliceOptions are the optional parts of slicing.
type SliceOptions struct {
	// RescaleNorms multiplies the kept RMSNorm weights by sqrt(H/H') when
	// embedding channels are cut, so the norm output keeps its scale: when
	// the removed channels are zero in the residual stream the student's
	// norm outputs equal the teacher's up to eps. Not part of the papers'
	// method (which leaves the change to distillation); RMSNorm families
	// only (not nemotron), since LayerNorm's mean cannot be corrected by a
	// weight. qwen3's q_norm/k_norm work over head_dim and are not scaled.
	RescaleNorms bool
}

// Sliced is a lazy TensorSource of the student: each tensor is cut from the
// teacher when read, row by row where the teacher supports ranged reads, so
// pruning a large model needs memory for one output tensor at a time.
type Sliced struct {
	src   model.TensorSource
	specs map[string]sliceSpec
	names []string
}

// Slice builds the student's tensors from the teacher's per plan. Every
// teacher tensor must be understood (a tensor the rules do not cover is an
// error rather than silently copied at the wrong width).
func Slice(teacher *model.Config, src model.TensorSource, p *Plan, opt SliceOptions) (*Sliced, error) {
	if err := p.Validate(teacher); err != nil {
		return nil, err
	}
	var normScale float32
	if opt.RescaleNorms && len(p.Hidden) < teacher.HiddenSize {
		if teacher.Family == model.Nemotron {
			return nil, fmt.Errorf("prune: norm rescaling applies to RMSNorm (llama, mistral, qwen2, qwen3), not to nemotron's LayerNorm")
		}
		normScale = float32(math.Sqrt(float64(teacher.HiddenSize) / float64(len(p.Hidden))))
	}
	hd := teacher.HeadDim
	newLayer := map[int]int{}
	for i, l := range p.Layers {
		newLayer[l] = i
	}
	pick := func(ax axis, layer int) []int {
		switch ax {
		case axHidden:
			if len(p.Hidden) == teacher.HiddenSize {
				return nil
			}
			return p.Hidden
		case axHeads:
			return expand(p.Heads[layer], hd)
		case axGroups:
			return expand(p.Groups[layer], hd)
		case axFFN:
			return p.FFN[layer]
		}
		return nil
	}
	s := &Sliced{src: src, specs: map[string]sliceSpec{}}
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		var rule tensorRule
		out := name
		layer := -1
		if m := layerName.FindStringSubmatch(name); m != nil {
			l, _ := strconv.Atoi(m[1])
			r, ok := layerRules[m[2]]
			if !ok {
				if droppable.MatchString(name) {
					continue
				}
				return nil, fmt.Errorf("prune: do not know how to slice tensor %q", name)
			}
			ni, kept := newLayer[l]
			if !kept {
				continue
			}
			rule, layer = r, l
			out = model.LayerPrefix(ni) + m[2]
		} else if r, ok := globalRules[name]; ok {
			rule = r
		} else if droppable.MatchString(name) {
			continue
		} else {
			return nil, fmt.Errorf("prune: do not know how to slice tensor %q", name)
		}
		sp := sliceSpec{from: name, rows: pick(rule.rows, layer), cols: pick(rule.cols, layer)}
		if rule.rows == axHidden && strings.HasSuffix(name, "norm.weight") {
			sp.scale = normScale // the hidden-sized norms, not q_norm/k_norm
		}
		if layer >= 0 && rule.cols == axHeads && len(p.Folds) > layer {
			for _, f := range p.Folds[layer] {
				pos := slices.Index(p.Heads[layer], f.Into)
				if pos < 0 {
					return nil, fmt.Errorf("prune: layer %d folds into head %d, which is not kept", layer, f.Into)
				}
				for _, from := range f.From {
					if from < 0 || from >= teacher.NumHeads || slices.Contains(p.Heads[layer], from) {
						return nil, fmt.Errorf("prune: layer %d folds head %d, which is kept or out of range", layer, from)
					}
					for j := 0; j < hd; j++ {
						sp.addCols = append(sp.addCols, [2]int{pos*hd + j, from*hd + j})
					}
				}
			}
		}
		shape := slices.Clone(info.Shape)
		switch len(shape) {
		case 1:
			if sp.cols != nil {
				return nil, fmt.Errorf("prune: tensor %q is 1-D but its rule cuts columns", name)
			}
			sp.srcCols = 1
		case 2:
			sp.srcCols = shape[1]
		default:
			return nil, fmt.Errorf("prune: tensor %q has %d dims, want 1 or 2", name, len(shape))
		}
		if sp.rows != nil {
			if last := sp.rows[len(sp.rows)-1]; last >= shape[0] {
				return nil, fmt.Errorf("prune: tensor %q has %d rows, plan needs row %d", name, shape[0], last)
			}
			shape[0] = len(sp.rows)
		}
		if sp.cols != nil {
			if last := sp.cols[len(sp.cols)-1]; last >= shape[1] {
				return nil, fmt.Errorf("prune: tensor %q has %d columns, plan needs column %d", name, shape[1], last)
			}
			shape[1] = len(sp.cols)
		}
		sp.info = model.TensorInfo{Name: out, DType: info.DType, Shape: shape}
		s.specs[out] = sp
		s.names = append(s.names, out)
	}
	slices.Sort(s.names)
	return s, nil
}

// expand turns block indices into element indices of blocks of size n.
func expand(idx []int, n int) []int {
	out := make([]int, 0, len(idx)*n)
	for _, i := range idx {
		for j := 0; j < n; j++ {
			out = append(out, i*n+j)
		}
	}
	return out
}

// Info implements model.TensorSource.
func (s *Sliced) Info(name string) (model.TensorInfo, bool) {
	sp, ok := s.specs[name]
	if !ok {
		return model.TensorInfo{}, false
	}
	sp.info.Shape = slices.Clone(sp.info.Shape)
	return sp.info, true
}

// Names implements model.TensorSource.
func (s *Sliced) Names() []string { return slices.Clone(s.names) }

// ReadF32 implements model.TensorSource.
func (s *Sliced) ReadF32(name string, dst []float32) error {
	sp, ok := s.specs[name]
	if !ok {
		return fmt.Errorf("pruned model has no tensor %q", name)
	}
	if len(dst) != sp.info.NumElements() {
		return fmt.Errorf("tensor %q: dst has %d values, want %d", name, len(dst), sp.info.NumElements())
	}
	srcInfo, _ := s.src.Info(sp.from)
	nRows := srcInfo.Shape[0]
	rows := sp.rows
	if rows == nil {
		rows = seq(nRows)
	}
	cols := sp.cols
	w := sp.srcCols
	outW := w
	if cols != nil {
		outW = len(cols)
	}
	if sp.scale != 0 {
		defer func() {
			for i := range dst {
				dst[i] *= sp.scale
			}
		}()
	}
	rr, ranged := s.src.(model.RangeReader)
	if !ranged || len(srcInfo.Shape) == 1 {
		full := make([]float32, srcInfo.NumElements())
		if err := s.src.ReadF32(sp.from, full); err != nil {
			return err
		}
		for i, r := range rows {
			sp.gather(dst[i*outW:(i+1)*outW], full[r*w:(r+1)*w])
		}
		return nil
	}
	row := make([]float32, w)
	for i, r := range rows {
		if cols == nil {
			if err := rr.ReadF32Range(sp.from, r*w, dst[i*w:(i+1)*w]); err != nil {
				return err
			}
			continue
		}
		if err := rr.ReadF32Range(sp.from, r*w, row); err != nil {
			return err
		}
		sp.gather(dst[i*outW:(i+1)*outW], row)
	}
	return nil
}

// gather picks the kept columns of one source row and adds folded ones.
func (sp *sliceSpec) gather(dst, src []float32) {
	if sp.cols == nil {
		copy(dst, src)
		return
	}
	for j, c := range sp.cols {
		dst[j] = src[c]
	}
	for _, a := range sp.addCols {
		dst[a[0]] += src[a[1]]
	}
}
