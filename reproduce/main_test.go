package reproduce

import (
	"fmt"
	"os"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels"
)

// TestMain runs the package's pipelines on the kernels `minitron
// reproduce` uses: on a CPU this OpenBLAS does not know, its generic
// fallback would make TestReproduceQuick (the CI check of --quick) about
// three times slower.
func TestMain(m *testing.M) {
	if _, _, err := kernels.UpgradeBLASCore(); err != nil {
		fmt.Fprintln(os.Stderr, "reproduce tests: OpenBLAS kernel set:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
