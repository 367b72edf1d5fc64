package prune

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
)

// Target is a student architecture; a zero field means "as the teacher"
// (KVHeads: derived from the head mode).
type Target struct {
	Layers  int `json:"layers"`
	Hidden  int `json:"hidden"`
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	FFN     int `json:"ffn"`
}

func (t Target) String() string {
	return fmt.Sprintf("layers %d, hidden %d, heads %d, kv-heads %d, ffn %d", t.Layers, t.Hidden, t.Heads, t.KVHeads, t.FFN)
}

// HeadMode says how query heads are removed under GQA.
type HeadMode string

const (
	// PerGroup keeps every KV group and the same number of query heads in
	// each (the default; --kv-heads defaults to the teacher's).
	PerGroup HeadMode = "per-group"
	// WholeGroups drops whole KV groups with all their query heads
	// (--kv-heads defaults to heads / teacher's group size).
	WholeGroups HeadMode = "groups"
)

// Resolve fills the zero fields from the teacher and checks the target is
// a valid sub-architecture: no axis larger than the teacher's, heads a
// multiple of KV heads, at most the teacher's group size per group.
func (t Target) Resolve(teacher *model.Config, mode HeadMode) (Target, error) {
	if t.Layers == 0 {
		t.Layers = teacher.NumLayers
	}
	if t.Hidden == 0 {
		t.Hidden = teacher.HiddenSize
	}
	if t.Heads == 0 {
		t.Heads = teacher.NumHeads
	}
	if t.FFN == 0 {
		t.FFN = teacher.IntermediateSize
	}
	gsize := teacher.NumHeads / teacher.NumKVHeads
	if t.KVHeads == 0 {
		switch mode {
		case WholeGroups:
			if t.Heads%gsize != 0 {
				return t, fmt.Errorf("head mode groups keeps whole groups of %d query heads, so the heads must be a multiple of %d, got %d", gsize, gsize, t.Heads)
			}
			t.KVHeads = t.Heads / gsize
		default:
			t.KVHeads = teacher.NumKVHeads
		}
	}
	for _, a := range []struct {
		name      string
		got, have int
	}{
		{"layers", t.Layers, teacher.NumLayers}, {"hidden", t.Hidden, teacher.HiddenSize},
		{"heads", t.Heads, teacher.NumHeads}, {"kv-heads", t.KVHeads, teacher.NumKVHeads},
		{"ffn", t.FFN, teacher.IntermediateSize},
	} {
		if a.got < 0 {
			return t, fmt.Errorf("target %s must be positive, got %d", a.name, a.got)
		}
		if a.got > a.have {
			return t, fmt.Errorf("target %s %d is larger than the teacher's %d: pruning only removes", a.name, a.got, a.have)
		}
	}
	if t.Heads%t.KVHeads != 0 {
		return t, fmt.Errorf("%d heads are not divisible by %d KV heads", t.Heads, t.KVHeads)
	}
	per := t.Heads / t.KVHeads
	if per > gsize {
		return t, fmt.Errorf("%d heads over %d KV groups is %d per group, but the teacher's groups have only %d query heads", t.Heads, t.KVHeads, per, gsize)
	}
	switch mode {
	case PerGroup, "":
		// Any kv-heads ≤ teacher's is allowed when given explicitly.
	case WholeGroups:
		if per != gsize {
			return t, fmt.Errorf("head mode groups keeps whole groups: heads/kv-heads must be %d, got %d/%d", gsize, t.Heads, t.KVHeads)
		}
	default:
		return t, fmt.Errorf("unknown head mode %q (want per-group or groups)", mode)
	}
	return t, nil
}

// Apply returns the teacher's config with the target's widths.
func (t Target) Apply(teacher *model.Config) *model.Config {
	c := *teacher
	c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.IntermediateSize = t.Layers, t.Hidden, t.Heads, t.KVHeads, t.FFN
	return &c
}

// LayerMetric chooses which layers --layers drops.
type LayerMetric string

const (
	// LayerAuto uses LayerLoss when the scores have drop-one losses, else LayerBI.
	LayerAuto LayerMetric = "auto"
	// LayerBI drops the layers with the lowest Block Importance.
	LayerBI LayerMetric = "bi"
	// LayerLoss drops the layers whose removal alone raises the loss least.
	LayerLoss LayerMetric = "loss"
	// LayerBlock drops one contiguous block: the best block by loss from the
	// scores file when it has one of the right size, else the block with
	// the smallest summed Block Importance.
	LayerBlock LayerMetric = "block"
)

// SelectOptions control how scores become a plan.
type SelectOptions struct {
	HeadMode    HeadMode
	LayerMetric LayerMetric
	DropLayers  []int // explicit layers to drop (teacher numbering); overrides LayerMetric
	// ResidualHeads folds pruned query heads into kept heads of the same
	// KV group (see Plan.Folds and the prune command's help).
	ResidualHeads bool
}

// SelectPlan keeps the top-scored indices per axis: channels network-wide,
// KV groups then query heads within each kept group per layer, neurons per
// layer; layers per opt. target must be resolved.
func SelectPlan(teacher *model.Config, target Target, sc *importance.Scores, opt SelectOptions) (*Plan, error) {
	if sc.Shape != importance.ShapeOf(teacher) {
		return nil, fmt.Errorf("scores are for shape %+v, the teacher is %+v", sc.Shape, importance.ShapeOf(teacher))
	}
	layers, err := selectLayers(teacher, target, sc, opt)
	if err != nil {
		return nil, err
	}
	p := &Plan{Hidden: topK(sc.Channels, target.Hidden), Layers: layers}
	gsize := teacher.NumHeads / teacher.NumKVHeads
	per := target.Heads / target.KVHeads
	for l := 0; l < teacher.NumLayers; l++ {
		ls := sc.Layers[l]
		groups := topK(ls.Groups, target.KVHeads)
		var heads []int
		for _, g := range groups {
			within := topK(ls.Heads[g*gsize:(g+1)*gsize], per)
			for _, h := range within {
				heads = append(heads, g*gsize+h)
			}
		}
		p.Groups = append(p.Groups, groups)
		p.Heads = append(p.Heads, heads)
		if opt.ResidualHeads {
			p.Folds = append(p.Folds, folds(ls.Heads, groups, heads, gsize))
		}
		p.FFN = append(p.FFN, topK(ls.Neurons, target.FFN))
	}
	return p, p.Validate(teacher)
}

// folds pairs, in each kept group, the pruned heads (by descending score)
// with the kept heads by ascending score, cycling: the most important pruned
// head goes into the least important kept head, mirroring the paper's
// head_i ← head_i + head_{2K−i+1} pairing.
func folds(scores []float64, groups, kept []int, gsize int) []HeadFold {
	var out []HeadFold
	for _, g := range groups {
		var in, pruned []int
		for h := g * gsize; h < (g+1)*gsize; h++ {
			if slices.Contains(kept, h) {
				in = append(in, h)
			} else {
				pruned = append(pruned, h)
			}
		}
		if len(pruned) == 0 {
			continue
		}
		byScore := func(desc bool) func(a, b int) int {
			return func(a, b int) int {
				if scores[a] == scores[b] {
					return a - b
				}
				if (scores[a] > scores[b]) == desc {
					return -1
				}
				return 1
			}
		}
		slices.SortFunc(pruned, byScore(true))
		slices.SortFunc(in, byScore(false))
		m := map[int][]int{}
		for i, p := range pruned {
			into := in[i%len(in)]
			m[into] = append(m[into], p)
		}
		for _, into := range in {
			if len(m[into]) > 0 {
				out = append(out, HeadFold{Into: into, From: m[into]})
			}
		}
	}
	return out
}

// topK returns the indices of the k highest scores, ascending.
func topK(scores []float64, k int) []int {
	r := importance.Rank(scores)[:k]
	slices.Sort(r)
	return r
}

func selectLayers(teacher *model.Config, target Target, sc *importance.Scores, opt SelectOptions) ([]int, error) {
	L := teacher.NumLayers
	nDrop := L - target.Layers
	var drop []int
	switch {
	case len(opt.DropLayers) > 0:
		drop = slices.Clone(opt.DropLayers)
		slices.Sort(drop)
		drop = slices.Compact(drop)
		for _, l := range drop {
			if l < 0 || l >= L {
				return nil, fmt.Errorf("DropLayers: layer %d out of range [0,%d)", l, L)
			}
		}
		if target.Layers != L && len(drop) != nDrop {
			return nil, fmt.Errorf("DropLayers lists %d layers but a target of %d layers means dropping %d", len(drop), target.Layers, nDrop)
		}
		if len(drop) >= L {
			return nil, fmt.Errorf("DropLayers would drop every layer")
		}
	case nDrop == 0:
	default:
		d := sc.Depth
		metric := opt.LayerMetric
		if metric == "" || metric == LayerAuto {
			metric = LayerBI
			if d != nil && len(d.DropLoss) == L {
				metric = LayerLoss
			}
		}
		switch metric {
		case LayerBI:
			if d == nil || len(d.BI) != L {
				return nil, fmt.Errorf("dropping layers by block importance needs a scores file with the bi layer metric (importance's BI option)")
			}
			drop = bottomK(d.BI, nDrop)
		case LayerLoss:
			if d == nil || len(d.DropLoss) != L {
				return nil, fmt.Errorf("dropping layers by loss needs a scores file with the loss layer metric (importance's Loss option)")
			}
			drop = bottomK(d.DropLoss, nDrop)
		case LayerBlock:
			start := -1
			if d != nil {
				for _, b := range d.Blocks {
					if b.K == nDrop && b.Metric == "loss" {
						start = b.Start
					}
				}
				if start < 0 && len(d.BI) == L {
					start = importance.BestBlockBI(d.BI, nDrop).Start
				}
			}
			if start < 0 {
				return nil, fmt.Errorf("dropping a contiguous block of %d layers needs block-importance or a block loss for k=%d in the scores file", nDrop, nDrop)
			}
			// Scores built in memory skip importance.Load's validation.
			if start+nDrop > L {
				return nil, fmt.Errorf("the scores' block of %d layers starting at layer %d is outside the model's %d layers", nDrop, start, L)
			}
			for l := start; l < start+nDrop; l++ {
				drop = append(drop, l)
			}
		default:
			return nil, fmt.Errorf("unknown layer metric %q (want auto, bi, loss or block)", metric)
		}
	}
	var keep []int
	for l := 0; l < L; l++ {
		if _, found := slices.BinarySearch(drop, l); !found {
			keep = append(keep, l)
		}
	}
	return keep, nil
}

// bottomK returns the indices of the k lowest values, ascending.
func bottomK(v []float64, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

// ParseLayerList parses "16-31" or "3,5,7-9".
func ParseLayerList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := strconv.Atoi(strings.TrimSpace(hi))
		if errA != nil || errB != nil || a < 0 || a > b {
			return nil, fmt.Errorf("bad layer list entry %q (want N or A-B with 0 ≤ A ≤ B)", part)
		}
		for l := a; l <= b; l++ {
			out = append(out, l)
		}
	}
	return out, nil
}
