package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/minitron-dev/minitron/eval"
	"github.com/spf13/cobra"
)

func init() { registerEval(newEvalCodeCmd) }

// EvalCodeOptions are the flags of `eval code`.
type EvalCodeOptions struct {
	Problems string
	Samples  string
	JSON     bool
	Wall     time.Duration
	CPU      time.Duration
	MemoryMB int64
	Procs    int
	Parallel int
}

func newEvalCodeCmd() *cobra.Command {
	o := &EvalCodeOptions{}
	cmd := &cobra.Command{
		Use:   "code",
		Short: "Score code completions produced elsewhere (HumanEval/MBPP pass@k) in a sandbox",
		Long: `Run completions against HumanEval or MBPP problems and report pass@k with the unbiased
estimator of the Codex paper, for k = 1, 10, 100 as far as every problem's sample count allows.

  --problems  HumanEval jsonl (task_id, prompt, canonical_solution, test, entry_point)
              or MBPP jsonl (task_id, text, code, test_list, test_setup_code)
  --samples   the reference harness's samples jsonl (task_id, completion), any number per
              problem; completions are run as given (no truncation)

HumanEval runs prompt + completion + test + check(entry_point); MBPP runs completion + its
asserts. Each sample is a separate python3 process in a fresh temporary directory with wall
and CPU time, address-space, file-size and (as root) process-count limits; as root it also
gets new network, mount and PID namespaces (no network, the filesystem read-only outside its
directory, every process killed with it) and runs as an unprivileged user of its own (one per
parallel slot, so a fork bomb does not starve the samples beside it). What this machine enforced
is printed to stderr (and under "sandbox" with --json). Problems without samples are left out.`,
		Example: `  minitron eval code --problems HumanEval.jsonl --samples samples.jsonl
  minitron eval code --problems mbpp.jsonl --samples mbpp_samples.jsonl --json --wall 20s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvalCode(o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Problems, "problems", "", "HumanEval or MBPP problems jsonl (required)")
	f.StringVar(&o.Samples, "samples", "", "completions jsonl: task_id, completion (required)")
	f.BoolVar(&o.JSON, "json", false, "print the scores, per-problem results and the sandbox's limits as JSON")
	f.DurationVar(&o.Wall, "wall", eval.DefaultLimits.Wall, "wall-clock limit per sample")
	f.DurationVar(&o.CPU, "cpu", eval.DefaultLimits.CPU, "CPU-time limit per sample")
	f.Int64Var(&o.MemoryMB, "memory-mb", eval.DefaultLimits.Memory>>20, "address-space limit per sample in MiB")
	f.IntVar(&o.Procs, "procs", eval.DefaultLimits.Procs, "process limit per sample (enforced when run as root)")
	f.IntVar(&o.Parallel, "parallel", runtime.NumCPU(), "samples run at once (each as its own user when run as root)")
	_ = cmd.MarkFlagRequired("problems")
	_ = cmd.MarkFlagRequired("samples")
	return cmd
}

func (o *EvalCodeOptions) limits() (eval.Limits, error) {
	if o.Wall <= 0 || o.CPU <= 0 || o.MemoryMB <= 0 || o.Procs <= 0 || o.Parallel <= 0 {
		return eval.Limits{}, fmt.Errorf("--wall, --cpu, --memory-mb, --procs and --parallel must be positive")
	}
	return eval.Limits{Wall: o.Wall, CPU: o.CPU, Memory: o.MemoryMB << 20, Procs: o.Procs, Parallel: o.Parallel}, nil
}

func runEvalCode(o *EvalCodeOptions, stdout, stderr io.Writer) error {
	lim, err := o.limits()
	if err != nil {
		return err
	}
	problems, err := eval.ReadCodeProblems(o.Problems)
	if err != nil {
		return err
	}
	samples, err := eval.ReadCodeSamples(o.Samples)
	if err != nil {
		return err
	}
	bar := newProgressBar("code")
	res, err := eval.ScoreCodeSamples(problems, samples, eval.CodeScoreOptions{Limits: lim, Progress: bar.Update})
	bar.Finish()
	if err != nil {
		return fmt.Errorf("%s: %w", o.Samples, err)
	}
	fmt.Fprintf(stderr, "sandbox:\n  %s\n", strings.Join(res.Enforced, "\n  "))
	if o.JSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "problems %d (of %d)\n", res.Problems, len(problems))
	for _, k := range res.Ks {
		fmt.Fprintf(stdout, "pass@%d %.4f\n", k, res.PassAtK[fmt.Sprintf("pass@%d", k)])
	}
	return nil
}
