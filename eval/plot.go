package eval

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Curve is one run's loss history.
type Curve struct {
	// Name labels the run (its directory's base name).
	Name string
	// Train and Val are (step, loss) points sorted by step.
	Train, Val plotter.XYs
	// Objective names the training loss when the run says ("kl" for
	// logit distillation, "ce" for plain training), else "".
	Objective string
}

// Keys accepted in a metrics JSONL line. The distill/train runs write
// {"step", "loss", ...} per optimizer step and validation lines with
// "val_loss"; the alternatives cover other trainers' names.
var (
	trainKeys = []string{"loss", "train_loss"}
	valKeys   = []string{"val_loss", "validation_loss", "eval_loss", "valid_loss"}
)

// MetricsFile finds a run's metrics JSONL: the path itself when it is a
// file, else metrics.jsonl in the directory, else the one *.jsonl there
// whose name contains "metrics".
func MetricsFile(run string) (string, error) {
	st, err := os.Stat(run)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return run, nil
	}
	p := filepath.Join(run, "metrics.jsonl")
	if fileExists(p) {
		return p, nil
	}
	m, _ := filepath.Glob(filepath.Join(run, "*metrics*.jsonl"))
	if len(m) == 1 {
		return m[0], nil
	}
	if len(m) > 1 {
		return "", fmt.Errorf("%s: several metrics files (%s); name one", run, strings.Join(m, ", "))
	}
	return "", fmt.Errorf("%s: no metrics.jsonl (is this a distill/train run directory?)", run)
}

// ReadCurve reads a run's training and validation loss by step. Lines
// without a loss (configuration, events) are skipped; a line that is not
// JSON, or has a loss but no step, is an error at its line.
func ReadCurve(run string) (*Curve, error) {
	path, err := MetricsFile(run)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(filepath.Clean(run))
	if !isDir(run) {
		name = strings.TrimSuffix(filepath.Base(filepath.Dir(path)), "/")
	}
	c := &Curve{Name: name}
	what := "metrics jsonl ({\"step\": N, \"loss\": x} or {\"step\": N, \"val_loss\": x})"
	err = readJSONL(path, what, func(line int, obj map[string]json.RawMessage) error {
		num := func(keys []string) (float64, bool, error) {
			for _, k := range keys {
				raw, ok := obj[k]
				if !ok || string(raw) == "null" {
					continue
				}
				var v float64
				if err := json.Unmarshal(raw, &v); err != nil {
					return 0, false, errAt(path, line, "%q is not a number: %s", k, raw)
				}
				return v, true, nil
			}
			return 0, false, nil
		}
		tr, hasTr, err := num(trainKeys)
		if err != nil {
			return err
		}
		va, hasVa, err := num(valKeys)
		if err != nil {
			return err
		}
		// {"split": "val", "loss": x} style validation lines.
		var split string
		for _, k := range []string{"split", "kind", "type", "phase"} {
			if raw, ok := obj[k]; ok && json.Unmarshal(raw, &split) == nil {
				break
			}
		}
		if hasTr && !hasVa && (split == "val" || split == "validation" || split == "eval") {
			va, hasVa, hasTr = tr, true, false
		}
		if !hasTr && !hasVa {
			return nil
		}
		if hasTr && c.Objective == "" {
			c.Objective = objective(obj, tr)
		}
		step, ok, err := num([]string{"step", "iter", "iteration"})
		if err != nil {
			return err
		}
		if !ok {
			return errAt(path, line, "a loss without a \"step\"")
		}
		if hasTr && !math.IsNaN(tr) && !math.IsInf(tr, 0) {
			c.Train = append(c.Train, plotter.XY{X: step, Y: tr})
		}
		if hasVa && !math.IsNaN(va) && !math.IsInf(va, 0) {
			c.Val = append(c.Val, plotter.XY{X: step, Y: va})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(c.Train)+len(c.Val) == 0 {
		return nil, fmt.Errorf("%s: no loss values (expected %s)", path, what)
	}
	// A resumed run may repeat steps; keep the order by step.
	sort.SliceStable(c.Train, func(i, j int) bool { return c.Train[i].X < c.Train[j].X })
	sort.SliceStable(c.Val, func(i, j int) bool { return c.Val[i].X < c.Val[j].X })
	return c, nil
}

// objective guesses which loss "loss" is: the distill loop logs the
// weighted sum as loss next to its parts (ce, kl, reverse_kl).
func objective(obj map[string]json.RawMessage, loss float64) string {
	var parts []string
	for _, k := range []string{"ce", "kl", "reverse_kl"} {
		if raw, ok := obj[k]; ok {
			var v float64
			if json.Unmarshal(raw, &v) == nil {
				parts = append(parts, k)
			}
		}
	}
	return strings.Join(parts, "+")
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// palette holds distinguishable line colours (Tableau 10).
var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	color.RGBA{23, 190, 207, 255},
}

// ema smooths y with an exponential moving average (TensorBoard style,
// debiased at the start).
func ema(pts plotter.XYs, beta float64) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	var m, w float64
	for i, p := range pts {
		m = beta*m + (1-beta)*p.Y
		w = beta*w + (1 - beta)
		out[i] = plotter.XY{X: p.X, Y: m / w}
	}
	return out
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// (steps read 100, not 100.00).
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// PlotOptions style a loss plot.
type PlotOptions struct {
	Title string
	// Width and Height of the whole image (default 12×4.5 inches).
	Width, Height vg.Length
	// LogY plots the losses on a log scale.
	LogY bool
}

// PlotCurves draws the runs' training loss (left; with more than 50 points
// the raw curve is drawn faint under a moving average) and validation loss
// (right) side by side, one colour per run, and writes a PNG to out
// atomically. Without any validation points the training panel fills the
// image.
func PlotCurves(curves []*Curve, out string, o PlotOptions) error {
	if len(curves) == 0 {
		return fmt.Errorf("plot: no runs")
	}
	if o.Width == 0 {
		o.Width = 12 * vg.Inch
	}
	if o.Height == 0 {
		o.Height = 4.5 * vg.Inch
	}
	hasVal := false
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range curves {
		hasVal = hasVal || len(c.Val) > 0
		if n := len(c.Train); n > 0 {
			lo, hi = math.Min(lo, c.Train[n-1].Y), math.Max(hi, c.Train[n-1].Y)
		}
	}
	// Runs with different objectives (KL of a distilled student next to a
	// teacher's cross-entropy) differ by orders of magnitude: use a log
	// axis for the training panel then.
	logTrain := o.LogY || (lo > 0 && hi/lo > 10)
	panel := func(title string, val bool) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "step"
		p.Y.Label.Text = "loss"
		if o.LogY || (!val && logTrain) {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		p.X.Tick.Marker = plainTicks{}
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		for i, c := range curves {
			pts := c.Train
			if val {
				pts = c.Val
			}
			if len(pts) == 0 {
				continue
			}
			col := palette[i%len(palette)]
			if !val && len(pts) > 50 {
				// Noisy per-step losses: the raw curve faint, an
				// exponential moving average on top.
				raw, err := plotter.NewLine(pts)
				if err != nil {
					return nil, fmt.Errorf("plot %s: %w", c.Name, err)
				}
				r, g, b, _ := col.RGBA()
				raw.Color = color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 70}
				raw.Width = vg.Points(0.8)
				p.Add(raw)
				pts = ema(pts, 0.9)
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, fmt.Errorf("plot %s: %w", c.Name, err)
			}
			l.Color = col
			l.Width = vg.Points(1.5)
			p.Add(l)
			label := c.Name
			if !val && c.Objective != "" {
				label += " (" + c.Objective + ")"
			}
			p.Legend.Add(label, l)
			if val && len(pts) <= 50 {
				s, err := plotter.NewScatter(pts)
				if err != nil {
					return nil, err
				}
				s.Color = l.Color
				s.Shape = draw.CircleGlyph{}
				s.Radius = vg.Points(2.5)
				p.Add(s)
			}
		}
		// Head room above the curves for the legend.
		if p.Y.Max > p.Y.Min {
			if _, isLog := p.Y.Scale.(plot.LogScale); isLog && p.Y.Min > 0 {
				p.Y.Max *= math.Pow(p.Y.Max/p.Y.Min, 0.3)
			} else {
				p.Y.Max += 0.3 * (p.Y.Max - p.Y.Min)
			}
		}
		return p, nil
	}
	trainTitle, valTitle := "training loss", "validation loss (LM cross-entropy)"
	if o.Title != "" {
		trainTitle, valTitle = o.Title+": "+trainTitle, o.Title+": "+valTitle
	}
	plots := [][]*plot.Plot{{}}
	pt, err := panel(trainTitle, false)
	if err != nil {
		return err
	}
	plots[0] = append(plots[0], pt)
	if hasVal {
		pv, err := panel(valTitle, true)
		if err != nil {
			return err
		}
		plots[0] = append(plots[0], pv)
	}
	img := vgimg.New(o.Width, o.Height)
	dc := draw.New(img)
	t := draw.Tiles{Rows: 1, Cols: len(plots[0]), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(plots, t, dc)
	for j, p := range plots[0] {
		p.Draw(canvases[0][j])
	}
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, ".plot-*.png")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}
