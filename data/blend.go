package data

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ParseBlend reads a blend of datasets in Megatron's convention, a weight
// before each prefix (here "0.7:a" for "0.7 a"), or prefixes alone, which
// are blended equally (nil weights). Weights must be given for all or none,
// be positive, and are normalised by OpenBlend.
func ParseBlend(specs []string) (prefixes []string, weights []float64, err error) {
	for _, s := range specs {
		s = strings.TrimSpace(s)
		w, p, ok := strings.Cut(s, ":")
		f, ferr := strconv.ParseFloat(w, 64)
		if !ok || ferr != nil {
			prefixes = append(prefixes, s)
			continue
		}
		if !(f > 0) {
			return nil, nil, fmt.Errorf("blend %q: weight %v must be positive", s, f)
		}
		prefixes, weights = append(prefixes, p), append(weights, f)
	}
	if len(weights) > 0 && len(weights) != len(prefixes) {
		return nil, nil, fmt.Errorf("blend %q: give a weight for every dataset (WEIGHT:PREFIX) or for none", strings.Join(specs, ","))
	}
	for _, p := range prefixes {
		if p == "" {
			return nil, nil, fmt.Errorf("blend %q: empty dataset prefix", strings.Join(specs, ","))
		}
	}
	return prefixes, weights, nil
}

// Split is the dataset of one split of prefix: prefix itself when
// prefix.idx exists (a plain Megatron dataset), else prefix_SPLIT (a corpus
// written by PrepareCorpus, split "train" or "val"), or "" when neither
// exists.
func Split(prefix, split string) string {
	exists := func(p string) bool { _, err := os.Stat(p + ".idx"); return err == nil }
	switch {
	case exists(prefix):
		return prefix
	case exists(prefix + "_" + split):
		return prefix + "_" + split
	}
	return ""
}
