package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseBlend(t *testing.T) {
	for _, tc := range []struct {
		in       []string
		prefixes []string
		weights  []float64
		err      string
		reason   string
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, nil, "", "prefixes alone: blended equally"},
		{[]string{"0.7:a", "0.3:data/b"}, []string{"a", "data/b"}, []float64{0.7, 0.3}, "", "Megatron's weighted blend"},
		{[]string{"c:/x/a"}, []string{"c:/x/a"}, nil, "", "a prefix with a colon that is no weight"},
		{[]string{"0.7:a", "b"}, nil, nil, "for every dataset", "weights for some only"},
		{[]string{"0:a"}, nil, nil, "must be positive", "a zero weight"},
		{[]string{"1:"}, nil, nil, "empty dataset prefix", "a weight without a prefix"},
	} {
		p, w, err := ParseBlend(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: ParseBlend(%q) error %v, want %q", tc.reason, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(p, tc.prefixes) || !reflect.DeepEqual(w, tc.weights) {
			t.Errorf("%s: ParseBlend(%q) = %q, %v, %v; want %q, %v", tc.reason, tc.in, p, w, err, tc.prefixes, tc.weights)
		}
	}
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"plain.idx", "corpus_train.idx", "corpus_val.idx"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	for _, tc := range []struct {
		prefix, split, want, reason string
	}{
		{p("plain"), "train", p("plain"), "a plain Megatron dataset is its own train split"},
		{p("corpus"), "train", p("corpus_train"), "a prepared corpus's train split"},
		{p("corpus"), "val", p("corpus_val"), "a prepared corpus's val split"},
		{p("corpus_train"), "val", p("corpus_train"), "an explicit split is taken as given"},
		{p("missing"), "train", "", "nothing there"},
	} {
		if got := Split(tc.prefix, tc.split); got != tc.want {
			t.Errorf("%s: Split(%s, %s) = %q, want %q", tc.reason, tc.prefix, tc.split, got, tc.want)
		}
	}
}
