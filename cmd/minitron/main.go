// Command minitron compresses decoder language models the Minitron way:
// score importance, prune, search, distill and evaluate. Each stage is a
// subcommand that reads and writes ordinary files; the logic lives in the
// library packages (model, data, importance, prune, distill, eval).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/minitron-dev/minitron/model/kernels"
)

// version is set at link time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// commands holds the constructors of the top-level subcommands; each
// subcommand's file appends its own in init so the files stay independent.
var commands []func() *cobra.Command

func register(f func() *cobra.Command) { commands = append(commands, f) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "minitron",
		Short: "Prune and distill decoder language models (Minitron method)",
		Long: `minitron compresses decoder LMs the way NVIDIA made Minitron-8B/4B from Nemotron-4 15B:
score the importance of embedding channels, heads, neurons and layers, prune to a smaller
architecture, retrain the student by logit distillation, and evaluate it.`,
		Example: `  minitron inspect ./Nemotron-4-15B
  minitron eval nll --model ./tiny --ids 2,17,99,4
  minitron reproduce --out runs/mini`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range commands {
		root.AddCommand(f())
	}
	return root
}

func main() {
	// OpenBLAS 0.3.21 (Debian 12) runs its generic Prescott kernels on CPUs
	// it does not know, a third of the speed on AVX-512 machines; take the
	// set the CPU supports unless OPENBLAS_CORETYPE chose one. A command's
	// --blas-core still decides.
	if from, _, err := kernels.UpgradeBLASCore(); err != nil {
		fmt.Fprintf(os.Stderr, "minitron: keeping OpenBLAS's %s kernels: %v\n", from, err)
	}
	err := newRootCmd().Execute()
	if err != nil {
		fmt.Fprintln(os.Stderr, "minitron:", err)
	}
	endJob(err)
	if err != nil {
		os.Exit(1)
	}
}
