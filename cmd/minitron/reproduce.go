package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/minitron-dev/minitron/internal/reproduce"
	"github.com/spf13/cobra"
)

func init() { register(newReproduceCmd) }

// ReproduceOptions are the flags of `reproduce`.
type ReproduceOptions struct {
	Out     string
	Quick   bool
	Threads int
}

func newReproduceCmd() *cobra.Command {
	o := &ReproduceOptions{}
	cmd := &cobra.Command{
		Use:   "reproduce",
		Short: "Run the Minitron paper in miniature on built-in data (no download)",
		Long: `reproduce runs the whole Minitron flow on the corpora every Go installation ships (the Go
sources as the main corpus, Newton's Opticks as a second domain): it trains a byte-level BPE
tokenizer and a small nemotron teacher, scores importance, prunes two students to about 50%
and 25% of the teacher's non-embedding parameters with the papers' width recipe, distills
each with logits-only KL, trains the baselines on the same token budgets (from scratch; CE
retraining; depth pruning; random pruning; from scratch with many times the tokens),
evaluates every model (held-out perplexity on both corpora, next-line multiple-choice tasks in
HellaSwag format) and writes OUT/REPORT.md with tables, the papers' claims marked held or not
held, and plots under OUT/plots.

Every stage is cached in its own directory under OUT: a re-run skips finished stages, and a
changed setting reruns only what depends on it. --quick runs the same pipeline on tiny sizes
in about a minute (a smoke test, not a result). Progress goes to stderr.`,
		Example: `  minitron reproduce --out runs/mini
  minitron reproduce --quick --out runs/quick`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runReproduce(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "runs/default", "run directory (stages are cached here)")
	f.BoolVar(&o.Quick, "quick", false, "tiny sizes: the same pipeline in about a minute")
	f.IntVar(&o.Threads, "threads", 0, "compute goroutines (0: all cores)")
	return cmd
}

func runReproduce(ctx context.Context, o *ReproduceOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := reproduce.FullConfig()
	if o.Quick {
		cfg = reproduce.QuickConfig()
	}
	res, err := reproduce.Run(ctx, reproduce.Options{Out: o.Out, Config: cfg, Log: stderr, Workers: o.Threads})
	if err != nil {
		return err
	}
	held := 0
	for _, c := range res.Claims {
		if c.Held {
			held++
		}
	}
	fmt.Fprintf(stdout, "%s/REPORT.md: %d models, %d of %d claim checks held, %.0fs (%d of %d stages cached)\n",
		res.Out, len(res.Models), held, len(res.Claims), res.Seconds, res.Skipped(), len(res.Stages))
	return nil
}
