package distill

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
)

// writeDataset writes a Megatron indexed dataset of src's documents.
func writeDataset(t *testing.T, prefix string, src data.MemorySource) {
	t.Helper()
	w, err := data.NewIndexedWriter(prefix, data.DTypeUint16)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range src {
		if err := w.AddDocument(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Data takes what importance and eval take: a plain Megatron prefix, or a
// prepared corpus's prefix (trained on its _train split, validated on its
// _val split unless Val is given), blended with weights.
func TestDataPrefixes(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, filepath.Join(dir, "corpus_train"), corpus(1, 10, 100, 32))
	writeDataset(t, filepath.Join(dir, "corpus_val"), corpus(2, 4, 100, 32))
	writeDataset(t, filepath.Join(dir, "plain"), corpus(3, 10, 100, 32))
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	run := func(data []string, weights []float64) (Result, error) {
		return Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Data: data, DataWeights: weights,
			ValBatches: 1, SeqLen: 8, MicroBatch: 2, Steps: 2, LR: 1e-3, Seed: 3})
	}
	for _, tc := range []struct {
		data    []string
		weights []float64
		val     bool
		err     string
		reason  string
	}{
		{[]string{filepath.Join(dir, "corpus")}, nil, true, "", "a prepared corpus: its _train split, validated on its _val split"},
		{[]string{filepath.Join(dir, "plain")}, nil, false, "", "a plain Megatron prefix, no validation"},
		{[]string{filepath.Join(dir, "corpus"), filepath.Join(dir, "plain")}, []float64{0.7, 0.3}, false, "", "a weighted blend (validation only when every part has a _val split)"},
		{[]string{filepath.Join(dir, "nothing")}, nil, false, "nor a prepared corpus", "a prefix that is neither"},
	} {
		res, err := run(tc.data, tc.weights)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error containing %q", tc.reason, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.reason, err)
			continue
		}
		if math.IsNaN(res.ValLoss) == tc.val {
			t.Errorf("%s: validation loss %v, want validation %t", tc.reason, res.ValLoss, tc.val)
		}
	}
}

// A sequence longer than the student's or the teacher's
// max_position_embeddings is refused before any step.
func TestSeqLenWithinMaxPositions(t *testing.T) {
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 24, 32)
	cfg.MaxPositionEmbeddings = 8
	_, err := Run(context.Background(), Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, corpus(1, 10, 100, 32), 16, 1),
		SeqLen: 16, MicroBatch: 2, Steps: 1})
	if err == nil || !strings.Contains(err.Error(), "MaxPositionEmbeddings 8") {
		t.Errorf("SeqLen 16 over 8 positions: %v", err)
	}
}
