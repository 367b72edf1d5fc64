package main

import (
	"fmt"
	"runtime"

	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/spf13/cobra"
)

func init() { register(newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version, Go version and BLAS backend",
		Example: "  minitron version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "minitron %s (%s, %s/%s, blas: %s)\n",
				version, runtime.Version(), runtime.GOOS, runtime.GOARCH, kernels.BLASBackend())
			return nil
		},
	}
}
