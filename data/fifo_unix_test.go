//go:build unix

package data

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFIFOShardIsRefusedNotWaitedOn(t *testing.T) {
	// A named pipe in place of a dataset's .bin or .idx hung on open
	// (a FIFO's reader waits for a writer). Without the fix this test
	// hangs (run with -timeout to see it fail).
	for _, ext := range []string{".idx", ".bin"} {
		t.Run(ext, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "ds")
			for _, e := range []string{".idx", ".bin"} {
				b, err := os.ReadFile("testdata/idx/megatron_i32" + e)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(prefix+e, b, 0o644)
			}
			os.Remove(prefix + ext)
			if err := syscall.Mkfifo(prefix+ext, 0o644); err != nil {
				t.Skip("cannot make a FIFO here:", err)
			}
			ds, err := OpenIndexed(prefix)
			if err == nil {
				ds.Close()
			}
			if err == nil || !strings.Contains(err.Error(), prefix+ext) || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("got %v; want %s named as not a regular file", err, prefix+ext)
			}
		})
	}
}
