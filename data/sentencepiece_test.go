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
	for _, name := range []string{"spm-bpe", "spm-bpe-fb", "spm-uni", "spm-uni-fb", "spm-uni-user", "spm-bpe-nfkc", "spm-uni-nfkccf"} {
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

func TestSentencePieceNormalize(t *testing.T) {
	cases := []struct {
		model, in, want, reason string
	}{
		{"spm-bpe", "  a  b  ", "▁a▁b", "remove_extra_whitespaces strips and collapses spaces; dummy prefix added"},
		{"spm-bpe", "\tx", "▁\tx", "identity: a tab is not a space"},
		{"spm-bpe", "ﬁ", "▁ﬁ", "identity leaves the ligature"},
		{"spm-bpe-fb", "  a  b  ", "▁▁▁a▁▁b▁▁", "remove_extra_whitespaces=false keeps every space"},
		{"spm-bpe-nfkc", "ﬁnance", "▁finance", "nmt_nfkc charsmap expands the ligature"},
		{"spm-bpe-nfkc", "ＡＢ１", "▁AB1", "full-width to ASCII"},
		{"spm-bpe-nfkc", "a\tb", "▁a▁b", "nmt_nfkc maps tab to space, then spaces are escaped"},
		{"spm-uni-nfkccf", "STRAßE", "▁straße", "nfkc_cf lower-cases (simple folding keeps ß, as spm_normalize does)"},
		{"spm-uni-user", " <tool>x", "▁<tool>x", "user-defined pieces pass through"},
		{"spm-bpe", "a\xffb", "▁a\uFFFDb", "malformed UTF-8 becomes U+FFFD"},
		{"spm-bpe", "   ", "", "all spaces normalize to nothing"},
	}
	for _, c := range cases {
		sp, err := LoadSentencePiece(filepath.Join("testdata", "tok", c.model+".model"))
		if err != nil {
			t.Fatal(err)
		}
		if got := sp.Normalize(c.in); got != c.want {
			t.Errorf("%s Normalize(%q) = %q, want %q (%s)", c.model, c.in, got, c.want, c.reason)
		}
	}
}

func TestSentencePieceSpecials(t *testing.T) {
	sp, err := LoadSentencePiece(filepath.Join("testdata", "tok", "spm-uni-user.model"))
	if err != nil {
		t.Fatal(err)
	}
	if sp.UNK() != 0 || sp.BOS() != 1 || sp.EOS() != 2 || sp.PAD() != -1 {
		t.Errorf("unk %d bos %d eos %d pad %d, want 0 1 2 -1", sp.UNK(), sp.BOS(), sp.EOS(), sp.PAD())
	}
	ctrl := sp.PieceToID("<ctrl>")
	if ctrl < 0 || sp.Pieces[ctrl].Type != PieceControl {
		t.Fatalf("<ctrl> is id %d, not a control piece", ctrl)
	}
	for _, id := range sp.Encode("<ctrl> <s> </s>") {
		if sp.Pieces[id].Type == PieceControl {
			t.Errorf("control piece %q produced from text", sp.Pieces[id].Piece)
		}
	}
	user := sp.PieceToID("<tool>")
	if got := sp.Encode("<tool>"); !slices.Equal(got, []int{sp.PieceToID("▁"), user}) && !slices.Contains(got, user) {
		t.Errorf("Encode(<tool>) = %v, want the user-defined piece %d", got, user)
	}
	if got := sp.Decode([]int{1, user, 2}); got != "<tool>" {
		t.Errorf("Decode(<s> <tool> </s>) = %q", got)
	}
	if !strings.HasPrefix(sp.Identity(), "spm-unigram:") {
		t.Errorf("identity %q", sp.Identity())
	}
}

func TestSentencePieceBadInput(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "tok", "spm-bpe.model"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		b      []byte
		reason string
	}{
		{nil, "empty file has no pieces"},
		{[]byte("not a protobuf at all \xff\xff\xff"), "garbage"},
		{good[:len(good)/2], "truncated"},
		{[]byte{0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x02}, "a single UNKNOWN piece (valid)"},
	}
	for i, c := range cases[:3] {
		if _, err := ParseSentencePiece(c.b); err == nil {
			t.Errorf("case %d (%s): want error", i, c.reason)
		}
	}
	// The smallest valid model: a single UNKNOWN piece, unigram by default.
	sp, err := ParseSentencePiece(cases[3].b)
	if err != nil {
		t.Fatalf("minimal model: %v", err)
	}
	if got := sp.Encode("xy"); !slices.Equal(got, []int{0}) {
		t.Errorf("minimal model Encode = %v, want [0] (▁xy is one fused unknown run)", got)
	}
}

// TestSentencePieceChunkedBPE: per-chunk BPE (with its cache) gives the
// same segments as BPE over the whole normalized line.
func TestSentencePieceChunkedBPE(t *testing.T) {
	dir := filepath.Join("testdata", "tok")
	text := readLines(t, filepath.Join(dir, "test.txt"))
	for _, name := range []string{"spm-bpe", "spm-bpe-fb", "spm-bpe-nfkc"} {
		sp, err := LoadSentencePiece(filepath.Join(dir, name+".model"))
		if err != nil {
			t.Fatal(err)
		}
		if !sp.chunked {
			t.Fatalf("%s: default-trained BPE model should allow chunking", name)
		}
		for _, line := range append(text, strings.Join(text[:50], "  ")) {
			norm := sp.Normalize(line)
			if norm == "" {
				continue
			}
			a, b := sp.encodeBPE(norm), sp.encodeBPEChunked(norm)
			if !slices.Equal(a, b) {
				t.Fatalf("%s %q: chunked %v, whole %v", name, line, b, a)
			}
		}
	}
}
