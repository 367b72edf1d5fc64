package prune

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/minitron-dev/minitron/model"
)

// Preset is a named student shape for a known teacher shape.
type Preset struct {
	Name    string
	Teacher Target // the teacher shape it applies to
	Target  Target
	Note    string
}

// nemotron415B is Nemotron-4 15B's shape (head_dim 128, vocab 256000).
var nemotron415B = Target{Layers: 32, Hidden: 6144, Heads: 48, KVHeads: 8, FFN: 24576}

// Presets are the papers' students of Nemotron-4 15B.
var Presets = []Preset{
	{Name: "minitron-8b", Teacher: nemotron415B,
		Target: Target{Layers: 32, Hidden: 4096, Heads: 48, KVHeads: 8, FFN: 16384},
		Note:   "Minitron-8B: 32 layers, hidden 4096, 48 heads, 8 KV heads, FFN 16384 (8.27B params)"},
	{Name: "minitron-4b", Teacher: nemotron415B,
		Target: Target{Layers: 32, Hidden: 3072, Heads: 24, KVHeads: 8, FFN: 9216},
		Note: "Minitron-4B: 32 layers, hidden 3072, 24 heads, 8 KV heads, FFN 9216 (4.19B params). " +
			"The Minitron-4B model card says 32 heads, but 32 heads would give 4.39B; the paper's " +
			"4.19B and this project's design use 24"},
}

// PresetNames lists the preset names.
func PresetNames() []string {
	var n []string
	for _, p := range Presets {
		n = append(n, p.Name)
	}
	return n
}

// PresetTarget returns the named preset's target, checking that the teacher
// has the shape the preset was defined for.
func PresetTarget(name string, teacher *model.Config) (Target, error) {
	i := slices.IndexFunc(Presets, func(p Preset) bool { return p.Name == strings.ToLower(name) })
	if i < 0 {
		return Target{}, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	p := Presets[i]
	got := Target{Layers: teacher.NumLayers, Hidden: teacher.HiddenSize, Heads: teacher.NumHeads, KVHeads: teacher.NumKVHeads, FFN: teacher.IntermediateSize}
	if got != p.Teacher || teacher.HeadDim != 128 {
		return Target{}, fmt.Errorf("preset %s is defined for a Nemotron-4 15B-shaped teacher (%s, head_dim 128); this model has %s, head_dim %d: give the target shape explicitly instead",
			p.Name, p.Teacher, got, teacher.HeadDim)
	}
	return p.Target, nil
}

// Params is the total parameter count of the target applied to teacher.
func (t Target) Params(teacher *model.Config) int64 { return t.Apply(teacher).ParamCounts().Total }

// GridStep is the step of the width grids for a teacher dimension: the
// largest power of two not above dim/32, capped at 256 (hidden 6144 → 128,
// FFN 24576 → 256), so Minitron-8B/4B widths lie on the grid.
func GridStep(dim int) int {
	s := 1
	for s*2 <= dim/32 && s*2 <= 256 {
		s *= 2
	}
	return s
}

// DefaultMinFFNFraction is where the --params recipe stops cutting the MLP
// and starts cutting the embedding: 2/3 of the teacher's FFN (Nemotron-4
// 15B 24576 → 16384, Minitron-8B's FFN).
const DefaultMinFFNFraction = 2.0 / 3.0

// ForParams is the papers' default recipe for a parameter budget: keep all
// layers and heads; cut the MLP first, down to minFFNFrac of the teacher's
// FFN; if that is not enough, keep that FFN and cut the embedding (hidden)
// width. Each width is on the GridStep grid and the shape whose count is
// closest to budget is chosen. On Nemotron-4 15B, --params 8.27e9 gives
// exactly Minitron-8B.
func ForParams(teacher *model.Config, budget int64, minFFNFrac float64) (Target, error) {
	if minFFNFrac <= 0 || minFFNFrac > 1 {
		minFFNFrac = DefaultMinFFNFraction
	}
	full := Target{Layers: teacher.NumLayers, Hidden: teacher.HiddenSize, Heads: teacher.NumHeads, KVHeads: teacher.NumKVHeads, FFN: teacher.IntermediateSize}
	have := full.Params(teacher)
	if budget >= have {
		return Target{}, fmt.Errorf("parameter budget %d is not below the teacher's %d parameters: nothing to prune", budget, have)
	}
	if budget <= 0 {
		return Target{}, fmt.Errorf("parameter budget must be positive")
	}
	fs := GridStep(teacher.IntermediateSize)
	floor := int(math.Ceil(float64(teacher.IntermediateSize)*minFFNFrac/float64(fs))) * fs
	floor = min(max(floor, fs), teacher.IntermediateSize)
	t := full
	t.FFN = floor
	if t.Params(teacher) <= budget {
		t.FFN = closest(floor, teacher.IntermediateSize, fs, budget, func(v int) int64 { u := t; u.FFN = v; return u.Params(teacher) })
		return t, nil
	}
	hs := GridStep(teacher.HiddenSize)
	lo := t
	lo.Hidden = hs
	if lo.Params(teacher) > budget {
		return Target{}, fmt.Errorf("parameter budget %d is below what keeping all %d layers and %d heads allows (%d at hidden %d, ffn %d): give the shape explicitly",
			budget, teacher.NumLayers, teacher.NumHeads, lo.Params(teacher), hs, floor)
	}
	t.Hidden = closest(hs, teacher.HiddenSize, hs, budget, func(v int) int64 { u := t; u.Hidden = v; return u.Params(teacher) })
	return t, nil
}

// closest returns the grid value in [lo, hi] (multiples of step from lo)
// whose count is nearest to budget; ties go to the smaller count.
func closest(lo, hi, step int, budget int64, count func(int) int64) int {
	best, bestD := lo, int64(math.MaxInt64)
	for v := lo; v <= hi; v += step {
		d := count(v) - budget
		if d < 0 {
			d = -d
		}
		if d < bestD {
			best, bestD = v, d
		}
	}
	return best
}
