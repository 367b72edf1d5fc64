package data

import (
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// spmPython encodes lines with Python's sentencepiece (the library behind
// spm_encode), or skips the test when it is not installed.
const spmPython = `
import json, sys
import sentencepiece as spm
model, path = sys.argv[1], sys.argv[2]
sp = spm.SentencePieceProcessor(model_file=model)
lines = json.load(open(path, encoding="utf-8"))
out = []
for l in lines:
    ids = sp.encode(l)
    out.append({"ids": ids, "text": sp.decode(ids)})
print(json.dumps(out))
`

// randomLines makes adversarial inputs: runs of spaces and tabs, newlines,
// rare and unseen characters, user-defined and control symbols, pieces of
// the golden text glued together.
func randomLines(r *rand.Rand, text []string, n int) []string {
	alpha := []string{" ", " ", "  ", "\t", "\n", "a", "e", "the", "▁", "é", "日本", "🙂", "ǅ", "ﬁ", "Ａ", "1", "23",
		"<tool>", "<ctrl>", "<s>", "foo_bar", "\u00a0", "\u3000", "'", ".", "\xff", "x", "Q", "\u0301", "ß"}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := 0; k < 1+r.Intn(12); k++ {
			if r.Intn(4) == 0 {
				l := text[r.Intn(len(text))]
				if len(l) > 0 {
					s := r.Intn(len(l))
					b.WriteString(l[s:min(len(l), s+1+r.Intn(20))])
				}
				continue
			}
			b.WriteString(alpha[r.Intn(len(alpha))])
		}
		out[i] = strings.ToValidUTF8(b.String(), "?") // Python strings are Unicode
	}
	return out
}

// TestSentencePieceDifferential compares Encode and Decode with Python's
// sentencepiece on 2,000 random adversarial strings per golden model.
func TestSentencePieceDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("needs python3 sentencepiece; slow")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import sentencepiece").Run(); err != nil {
		t.Skip("python3 sentencepiece not available:", err)
	}
	dir := filepath.Join("testdata", "tok")
	lines := randomLines(rand.New(rand.NewSource(42)), readLines(t, filepath.Join(dir, "test.txt")), 2000)
	in := filepath.Join(t.TempDir(), "lines.json")
	b, _ := json.Marshal(lines)
	if err := os.WriteFile(in, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"spm-bpe", "spm-bpe-fb", "spm-uni", "spm-uni-fb", "spm-uni-user", "spm-bpe-nfkc", "spm-uni-nfkccf"} {
		model := filepath.Join(dir, name+".model")
		out, err := exec.Command(py, "-c", spmPython, model, in).Output()
		if err != nil {
			t.Fatalf("%s: python: %v", name, err)
		}
		var want []struct {
			IDs  []int  `json:"ids"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		sp, err := LoadSentencePiece(model)
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i, l := range lines {
			if got := sp.Encode(l); !slices.Equal(got, want[i].IDs) && !(len(got) == 0 && len(want[i].IDs) == 0) {
				bad++
				if bad <= 3 {
					t.Errorf("%s Encode(%q)\n got %v\nwant %v", name, l, got, want[i].IDs)
				}
			}
			if got := sp.Decode(want[i].IDs); got != want[i].Text {
				bad++
				if bad <= 3 {
					t.Errorf("%s Decode(%v) = %q, python %q", name, want[i].IDs, got, want[i].Text)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d random lines differ", name, bad, len(lines))
		}
	}
}
