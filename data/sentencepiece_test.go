package data

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func parseIDs(t testing.TB, s string) []int {
	t.Helper()
	var ids []int
	for _, f := range strings.Fields(s) {
		id, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestSentencePieceGolden compares every line of testdata/tok/test.txt
// with the ids spm_encode gave (make_golden.py) and the text spm_decode
// gave back.
func TestSentencePieceGolden(t *testing.T) {
	dir := filepath.Join("testdata", "tok")
	text := readLines(t, filepath.Join(dir, "test.txt"))
	for _, name := range []string{"spm-bpe", "spm-bpe-fb", "spm-uni", "spm-uni-fb", "spm-uni-user"} {
		t.Run(name, func(t *testing.T) {
			tok, err := LoadTokenizer(filepath.Join(dir, name+".model"))
			if err != nil {
				t.Fatal(err)
			}
			want := readLines(t, filepath.Join(dir, name+".ids"))
			dec := readLines(t, filepath.Join(dir, name+".decoded"))
			if len(want) != len(text) || len(dec) != len(text) {
				t.Fatalf("golden has %d/%d lines, text %d", len(want), len(dec), len(text))
			}
			bad := 0
			for i, line := range text {
				w := parseIDs(t, want[i])
				got := tok.Encode(line)
				if !slices.Equal(got, w) {
					bad++
					if bad <= 5 {
						t.Errorf("line %d %q:\n got %v\nwant %v", i+1, line, got, w)
					}
				}
				if d := tok.Decode(w); d != dec[i] {
					bad++
					if bad <= 5 {
						t.Errorf("line %d Decode = %q, spm_decode %q", i+1, d, dec[i])
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d lines differ", bad, len(text))
			}
		})
	}
}
