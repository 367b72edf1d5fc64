package importance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
)

func TestRunRefusesExistingOrCheckpointOut(t *testing.T) {
	dir, prefix := runFixture(t)
	existing := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(existing, []byte("earlier scores"), 0o644)
	cases := []struct {
		name      string
		out       string
		overwrite bool
		want      string
		reason    string
	}{
		{"existing", existing, false, "set Overwrite", "an earlier scores file was replaced silently"},
		{"config", filepath.Join(dir, "config.json"), true, "is a file of the checkpoint", "scores over config.json destroy the checkpoint, Overwrite or not"},
		{"weights via relative dir", filepath.Join(dir, "..", filepath.Base(dir), "model.safetensors"), true, "is a file of the checkpoint", "another spelling of the same directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: c.out, Overwrite: c.overwrite,
				Samples: 2, SeqLen: 8, Batch: 1, Aggregation: DefaultAggregation})
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "--") {
				t.Fatalf("got %v; want %q and no flag name (%s)", err, c.want, c.reason)
			}
		})
	}
	if _, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: existing,
		Samples: 2, SeqLen: 8, Batch: 1, Aggregation: DefaultAggregation}); !errors.Is(err, data.ErrOutputExists) {
		t.Errorf("the refusal should wrap data.ErrOutputExists for CLIs to name their flag: %v", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "earlier scores" {
		t.Error("a refused run changed the existing file")
	}
	if _, err := Run(context.Background(), Config{ModelDir: dir, Data: prefix, Out: existing, Overwrite: true,
		Samples: 2, SeqLen: 8, Batch: 1, Aggregation: DefaultAggregation}); err != nil {
		t.Errorf("Overwrite: %v", err)
	}
}
