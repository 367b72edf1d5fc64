package data

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var prepOutputs = []string{"_train.bin", "_train.idx", "_val.bin", "_val.idx", ".manifest.json"}

// leftovers lists what of the prefix's outputs and their temporaries is
// in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestPrepareRefusesExistingOutputs(t *testing.T) {
	corpus := smallCorpus(t)
	for _, suffix := range prepOutputs {
		t.Run(suffix, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "ds")
			// One earlier output is enough: the run would silently
			// replace it (or leave it beside new files).
			os.WriteFile(out+suffix, []byte("earlier"), 0o644)
			_, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Inputs: []string{corpus}}, Tokenizer: idxTestTok{}, Out: out})
			if err == nil || !strings.Contains(err.Error(), out+suffix) || !strings.Contains(err.Error(), "Overwrite") {
				t.Fatalf("got %v; want %s named as existing, and Overwrite", err, out+suffix)
			}
			if got := leftovers(t, dir); len(got) != 1 {
				t.Errorf("a refused run left %v", got)
			}
			if b, _ := os.ReadFile(out + suffix); string(b) != "earlier" {
				t.Errorf("the existing %s was changed", suffix)
			}
		})
	}
}

func TestPrepareOverwriteReplacesEverySplit(t *testing.T) {
	corpus := smallCorpus(t)
	out := filepath.Join(t.TempDir(), "ds")
	opts := PrepareOptions{Corpus: CorpusOptions{Inputs: []string{corpus}}, Tokenizer: idxTestTok{}, Out: out, Split: 0.7}
	if _, err := PrepareCorpus(opts); err != nil {
		t.Fatal(err)
	}
	first := map[string][]byte{}
	for _, s := range prepOutputs {
		first[s], _ = os.ReadFile(out + s)
	}
	opts.Overwrite, opts.Split = true, 0.5
	if _, err := PrepareCorpus(opts); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out + "_val.idx"); bytes.Equal(b, first["_val.idx"]) {
		t.Error("Overwrite with another split left the old val split")
	}
}

func TestPreparePublishesAllSplitsOrNone(t *testing.T) {
	// The val split cannot be published (a directory sits at its .idx, as
	// a failing rename would on a full or read-only disk): before, the
	// train split was already in place and stayed, without val or
	// manifest. Every split is staged first and published together.
	corpus := smallCorpus(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "ds")
	if err := os.Mkdir(out+"_val.idx", 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out+"_val.idx", "keep"), []byte("x"), 0o644)
	_, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Inputs: []string{corpus}}, Tokenizer: idxTestTok{}, Out: out, Overwrite: true})
	if err == nil {
		t.Fatal("publishing over a directory succeeded")
	}
	if got := leftovers(t, dir); len(got) != 1 || got[0] != "ds_val.idx" {
		t.Errorf("a failed publish left %v; want only the directory that blocked it", got)
	}
}
