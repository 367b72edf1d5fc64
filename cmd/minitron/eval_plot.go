package main

import (
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/eval"
	"github.com/minitron-dev/minitron/internal/atomicfile"
	"github.com/spf13/cobra"
)

func init() { registerEval(newEvalPlotCmd) }

// EvalPlotOptions are the flags of `eval plot`.
type EvalPlotOptions struct {
	Runs  []string
	Out   string
	Title string
	LogY  bool
}

func newEvalPlotCmd() *cobra.Command {
	o := &EvalPlotOptions{}
	cmd := &cobra.Command{
		Use:   "plot RUN_DIR...",
		Short: "Plot training and validation loss curves of distill/train runs side by side",
		Long: `Read each run's metrics.jsonl (one JSON object per line with "step" and "loss" for training
steps, "val_loss" for validation; a RUN_DIR may also name the file itself) and draw the training
loss (left panel) and validation loss (right panel) of every run, one colour per run, as a PNG.`,
		Example: `  minitron eval plot runs/student-width runs/student-depth --out curves.png
  minitron eval plot runs/*/ --out all.png --log-y --title "Minitron 4B"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Runs = args
			return runEvalPlot(o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "PNG file to write (required; missing directories are created)")
	f.StringVar(&o.Title, "title", "", "title prefix of the panels")
	f.BoolVar(&o.LogY, "log-y", false, "logarithmic loss axis")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runEvalPlot(o *EvalPlotOptions, w io.Writer) error {
	if err := atomicfile.Prepare(o.Out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	var curves []*eval.Curve
	for _, r := range o.Runs {
		c, err := eval.ReadCurve(r)
		if err != nil {
			return err
		}
		curves = append(curves, c)
		last := func(xs []float64) string {
			if len(xs) == 0 {
				return "—"
			}
			return fmt.Sprintf("%.4f", xs[len(xs)-1])
		}
		var tr, va []float64
		for _, p := range c.Train {
			tr = append(tr, p.Y)
		}
		for _, p := range c.Val {
			va = append(va, p.Y)
		}
		fmt.Fprintf(w, "%-24s %5d train points (last %s), %4d validation points (last %s)\n", c.Name, len(tr), last(tr), len(va), last(va))
	}
	if err := eval.PlotCurves(curves, o.Out, eval.PlotOptions{Title: o.Title, LogY: o.LogY}); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s\n", o.Out)
	return nil
}
