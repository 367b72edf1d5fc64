package data

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func smallCorpus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for i := 0; i < 60; i++ {
		files[fmt.Sprintf("src/f%02d.go", i)] = fmt.Sprintf("package f%d\n\nfunc F%d() int { return %d }\n", i, i, i*i)
	}
	files["src/readme.md"] = "not go"
	var jl strings.Builder
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&jl, "{\"text\": \"line %d of the jsonl\"}\n", i)
	}
	jl.WriteString("{\"other\": 1}\n")
	files["extra.jsonl"] = jl.String()
	writeFiles(t, dir, files)
	return dir
}

func readAllDocs(t *testing.T, prefix string) [][]int32 {
	t.Helper()
	ds, err := OpenIndexed(prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var out [][]int32
	for i := 0; i < ds.NumDocuments(); i++ {
		d, err := ds.Document(i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestPrepareCorpus(t *testing.T) {
	dir := smallCorpus(t)
	out := filepath.Join(t.TempDir(), "o", "ds")
	tok := idxTestTok{}
	m, err := PrepareCorpus(PrepareOptions{
		Corpus:    CorpusOptions{Inputs: []string{filepath.Join(dir, "src"), filepath.Join(dir, "extra.jsonl")}, Glob: "*.go"},
		Tokenizer: tok, Out: out, Split: 0.8, Workers: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every document comes back exactly once, tokens then EOS.
	var want, got []string
	WalkDocuments(CorpusOptions{Inputs: []string{filepath.Join(dir, "src"), filepath.Join(dir, "extra.jsonl")}, Glob: "*.go"},
		func(d Document) error { want = append(want, d.Text); return nil })
	for _, split := range []string{"train", "val"} {
		docs := readAllDocs(t, out+"_"+split)
		if len(docs) != m.Splits[split].Documents {
			t.Errorf("%s: %d documents, manifest says %d", split, len(docs), m.Splits[split].Documents)
		}
		var ntok int64
		for _, d := range docs {
			if d[len(d)-1] != int32(tok.EOS()) {
				t.Fatalf("%s document does not end with EOS: %v", split, d)
			}
			ids := make([]int, len(d)-1)
			for i := range ids {
				ids[i] = int(d[i])
			}
			got = append(got, tok.Decode(ids))
			ntok += int64(len(d))
		}
		if ntok != m.Splits[split].Tokens {
			t.Errorf("%s: %d tokens, manifest says %d", split, ntok, m.Splits[split].Tokens)
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(want, "\x00") != strings.Join(got, "\x00") {
		t.Errorf("documents in the datasets differ from the corpus: %d vs %d\n%q\n%q", len(got), len(want), got[:3], want[:3])
	}
	if n := m.Splits["val"].Documents; n < 10 || n > 26 {
		t.Errorf("val has %d of 90 documents, want about 18 for split 0.8", n)
	}
	if m.DType != "uint16" || m.Corpus.Issues[IssueJSONL] != 1 || m.Tokenizer.Identity != tok.Identity() {
		t.Errorf("manifest dtype %s issues %v tokenizer %q", m.DType, m.Corpus.Issues, m.Tokenizer.Identity)
	}
	if len(m.Corpus.Examples) != 1 || !strings.Contains(m.Corpus.Examples[0].Error(), "extra.jsonl:31: no string field \"text\"") {
		t.Errorf("manifest issue examples %v, want extra.jsonl:31", m.Corpus.Examples)
	}
	rm, err := ReadManifest(ManifestPath(out))
	if err != nil || rm.Splits["train"].Tokens != m.Splits["train"].Tokens {
		t.Errorf("ReadManifest: %v %+v", err, rm)
	}
}

// Outputs must be byte-identical whatever the worker count.
func TestPrepareDeterministicAcrossWorkers(t *testing.T) {
	dir := smallCorpus(t)
	var outs []string
	for _, w := range []int{1, 4} {
		out := filepath.Join(t.TempDir(), "ds")
		_, err := PrepareCorpus(PrepareOptions{
			Corpus:    CorpusOptions{Inputs: []string{dir}},
			Tokenizer: idxTestTok{bos: true}, Out: out, Workers: w, Split: 0.7,
		})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	for _, suffix := range []string{"_train.bin", "_train.idx", "_val.bin", "_val.idx", ".manifest.json"} {
		a, _ := os.ReadFile(outs[0] + suffix)
		b, _ := os.ReadFile(outs[1] + suffix)
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between --workers 1 and 4 (%d vs %d bytes)", suffix, len(a), len(b))
		}
	}
}

func TestPrepareTinyCorpusGetsVal(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "first", "b.txt": "second"})
	m, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Inputs: []string{dir}}, Tokenizer: idxTestTok{}, Out: filepath.Join(dir, "o")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Splits["train"].Documents != 1 || m.Splits["val"].Documents != 1 {
		t.Errorf("splits %+v: two documents at 0.98 must still give one validation document", m.Splits)
	}
}

func TestPrepareStrictAndErrors(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "fine", "b.jsonl": "{\"x\": 1}\n"})
	out := filepath.Join(dir, "o")
	_, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Inputs: []string{dir}, Strict: true}, Tokenizer: idxTestTok{}, Out: out})
	if err == nil || !strings.Contains(err.Error(), "b.jsonl:1: no string field") {
		t.Errorf("strict err = %v, want b.jsonl:1", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("failed prepare left files: %v", ents)
	}
	if _, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Inputs: []string{dir}}, Tokenizer: idxTestTok{}, Out: out, Split: 1.5}); err == nil {
		t.Error("split 1.5 accepted")
	}
}

func TestPrepareOpticks(t *testing.T) {
	if _, err := BuiltinFiles(BuiltinOpticks); err != nil {
		t.Skip(err)
	}
	out := filepath.Join(t.TempDir(), "opticks")
	m, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Builtin: BuiltinOpticks}, Tokenizer: idxTestTok{}, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if m.Corpus.Documents < 50 || m.Splits["val"].Documents < 1 {
		t.Errorf("opticks gave %d documents, %d in val", m.Corpus.Documents, m.Splits["val"].Documents)
	}
	// The training split feeds a sampler directly.
	s, closeFn, err := OpenBlend([]string{out + "_train"}, nil, SamplerOptions{SeqLen: 256, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if b, err := s.NextBatch(2); err != nil || len(b[1]) != 257 {
		t.Errorf("sampling the prepared data: %v", err)
	}
}

// BenchmarkPrepareOpticks measures corpus throughput (bytes/s of text) with
// the test byte tokenizer; compare -cpu 1,2 for the parallel speed-up.
func BenchmarkPrepareOpticks(b *testing.B) {
	files, err := BuiltinFiles(BuiltinOpticks)
	if err != nil {
		b.Skip(err)
	}
	st, _ := os.Stat(files[0])
	b.SetBytes(st.Size())
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		_, err := PrepareCorpus(PrepareOptions{Corpus: CorpusOptions{Builtin: BuiltinOpticks}, Tokenizer: idxTestTok{}, Out: filepath.Join(dir, "o"), Overwrite: true})
		if err != nil {
			b.Fatal(err)
		}
	}
}
