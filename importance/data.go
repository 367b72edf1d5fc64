package importance

import (
	"fmt"
	"os"

	"github.com/minitron-dev/minitron/data"
)

// OpenSplit opens the split of a dataset prefix written by `minitron data
// prepare`: PREFIX_train or PREFIX_val. A bare PREFIX (an indexed dataset
// with no splits) is accepted for "train".
func OpenSplit(prefix, split string) (*data.IndexedDataset, string, error) {
	p := prefix + "_" + split
	if _, idx := data.IndexedPaths(p); fileExists(idx) {
		d, err := data.OpenIndexed(p)
		return d, p, err
	}
	if _, idx := data.IndexedPaths(prefix); split == "train" && fileExists(idx) {
		d, err := data.OpenIndexed(prefix)
		return d, prefix, err
	}
	return nil, "", fmt.Errorf("data %s: no %s split (%s.idx not found; write it with minitron data prepare)", prefix, split, p)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Samples draws n calibration samples of seqLen tokens from src (see
// data.CalibrationSamples) as int slices, checking ids against the vocabulary.
func Samples(src data.TokenSource, n, seqLen int, seed uint64, vocab int) ([][]int, error) {
	raw, err := data.CalibrationSamples(src, n, seqLen, seed)
	if err != nil {
		return nil, err
	}
	out := make([][]int, len(raw))
	for i, s := range raw {
		out[i] = make([]int, len(s))
		for j, v := range s {
			if int(v) < 0 || int(v) >= vocab {
				return nil, fmt.Errorf("data token id %d is outside the model's vocabulary [0,%d): wrong tokenizer?", v, vocab)
			}
			out[i][j] = int(v)
		}
	}
	return out, nil
}
