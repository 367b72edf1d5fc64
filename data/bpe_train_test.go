package data

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

func seqOf(texts ...string) func(func(string) bool) {
	return slices.Values(texts)
}

func TestTrainBPESmall(t *testing.T) {
	cases := []struct {
		texts  []string
		minf   int
		want   [][2]string
		reason string
	}{
		{[]string{"ab ab ab abc"}, 2, [][2]string{{"a", "b"}, {"Ġ", "ab"}},
			"a b occurs 4 times, then Ġ ab 3; ab c once is below MinFrequency"},
		{[]string{"cd ab"}, 1, [][2]string{{"a", "b"}, {"c", "d"}, {"Ġ", "ab"}},
			"all pairs once: ties break by the pair's bytes, and Ġ (C4 A0) sorts after ASCII"},
		{[]string{"aaaa"}, 1, [][2]string{{"a", "a"}, {"aa", "aa"}},
			"overlapping pair a a counts 3, merging leftmost gives aa aa"},
		{[]string{"x<|endoftext|>x", "<|endoftext|>"}, 1, nil,
			"special tokens are cut out, so 'x' 'x' never form a pair"},
	}
	for _, c := range cases {
		r, err := TrainBPE(seqOf(c.texts...), TrainOptions{VocabSize: 300, MinFrequency: c.minf, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Merges, c.want) {
			t.Errorf("TrainBPE(%q) merges %q, want %q (%s)", c.texts, r.Merges, c.want, c.reason)
		}
		if len(r.Tokens) > 2+256+len(r.Merges) {
			t.Errorf("%d tokens for %d merges", len(r.Tokens), len(r.Merges))
		}
	}
	if _, err := TrainBPE(seqOf("x"), TrainOptions{VocabSize: 10}); err == nil {
		t.Error("vocab size below the byte alphabet: want error")
	}
	if _, err := TrainBPE(seqOf("x"), TrainOptions{VocabSize: 300, Pattern: "nope"}); err == nil {
		t.Error("unknown pattern: want error")
	}
}

// naiveBPE recounts every pair from scratch before each merge: slow but
// obviously right, the reference for the incremental trainer.
func naiveBPE(texts []string, pattern string, newTokens int) [][2]string {
	sp, _ := newSplitter(pattern)
	counts := map[string]int64{}
	for _, t := range texts {
		sp.split(t, func(p string) { counts[byteLevelEncode(p)]++ })
	}
	type word struct {
		syms []string
		n    int64
	}
	var words []word
	for w, n := range counts {
		var s []string
		for _, r := range w {
			s = append(s, string(r))
		}
		words = append(words, word{s, n})
	}
	var out [][2]string
	made := map[string]bool{}
	for len(made) < newTokens {
		pc := map[[2]string]int64{}
		for _, w := range words {
			for k := 0; k+1 < len(w.syms); k++ {
				pc[[2]string{w.syms[k], w.syms[k+1]}] += w.n
			}
		}
		var keys [][2]string
		for k := range pc {
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			break
		}
		sort.Slice(keys, func(i, j int) bool {
			if pc[keys[i]] != pc[keys[j]] {
				return pc[keys[i]] > pc[keys[j]]
			}
			if keys[i][0] != keys[j][0] {
				return keys[i][0] < keys[j][0]
			}
			return keys[i][1] < keys[j][1]
		})
		best := keys[0]
		if pc[best] < 2 {
			break
		}
		out = append(out, best)
		made[best[0]+best[1]] = true
		for i := range words {
			var s []string
			for k := 0; k < len(words[i].syms); k++ {
				if k+1 < len(words[i].syms) && words[i].syms[k] == best[0] && words[i].syms[k+1] == best[1] {
					s = append(s, best[0]+best[1])
					k++
				} else {
					s = append(s, words[i].syms[k])
				}
			}
			words[i].syms = s
		}
	}
	return out
}

func opticksSample(t testing.TB, n int) []string {
	t.Helper()
	root, err := GOROOT()
	if err != nil {
		t.Skip(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "src", "testdata", "Isaac.Newton-Opticks.txt"))
	if err != nil {
		t.Skip(err)
	}
	paras := strings.Split(string(b), "\n\n")
	if n > len(paras) {
		n = len(paras)
	}
	return paras[:n]
}

func TestTrainBPEMatchesNaive(t *testing.T) {
	texts := append(opticksSample(t, 150), "func main() {\n\tx := 12345\n\treturn\n}\n", "  spaces   and\n\n\nnewlines ")
	for _, pat := range []string{"gpt2", "llama3"} {
		pattern := map[string]string{"gpt2": GPT2Pattern, "llama3": Llama3Pattern}[pat]
		want := naiveBPE(texts, pattern, 150)
		r, err := TrainBPE(slices.Values(texts), TrainOptions{VocabSize: 2 + 256 + 150, Pattern: pat, Workers: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Merges, want) {
			for i := range min(len(want), len(r.Merges)) {
				if r.Merges[i] != want[i] {
					t.Errorf("%s: merge %d = %q, naive %q", pat, i, r.Merges[i], want[i])
					break
				}
			}
			t.Errorf("%s: %d merges, naive %d", pat, len(r.Merges), len(want))
		}
	}
}

func TestTrainBPERoundTripAndFiles(t *testing.T) {
	texts := opticksSample(t, 400)
	r, err := TrainBPE(slices.Values(texts[:300]), TrainOptions{VocabSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := TrainBPE(slices.Values(texts[:300]), TrainOptions{VocabSize: 1000, Workers: 1})
	if !bytes.Equal(r.TokenizerJSON(), r2.TokenizerJSON()) {
		t.Error("training is not deterministic across worker counts")
	}
	dir := t.TempDir()
	if err := r.WriteDir(dir, false); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 1000 || tok.EOS() != 0 || tok.BOS() != 0 || tok.PAD() != 1 || tok.UNK() != -1 {
		t.Errorf("vocab %d eos %d bos %d pad %d unk %d, want 1000 0 0 1 -1",
			tok.VocabSize(), tok.EOS(), tok.BOS(), tok.PAD(), tok.UNK())
	}
	var in, out int
	for _, text := range texts[300:] {
		ids := tok.Encode(text)
		if got := tok.Decode(ids); got != text {
			t.Fatalf("round trip failed:\n%q\n%q", text, got)
		}
		in += len(text)
		out += len(ids)
	}
	// A 1000-token vocab should compress English well beyond 1 byte/token.
	if ratio := float64(in) / float64(out); ratio < 2.5 {
		t.Errorf("held-out compression %.2f bytes/token, want > 2.5", ratio)
	}
	if got := tok.Encode("<|endoftext|>"); !slices.Equal(got, []int{0}) {
		t.Errorf("special token encodes to %v, want [0]", got)
	}
}

func ExampleTrainBPE() {
	r, err := TrainBPE(slices.Values([]string{"low lower lowest", "low low low"}), TrainOptions{VocabSize: 262})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Merges)
	tok, _ := r.Tokenizer()
	fmt.Println(tok.Encode(" lowest"))
	// Output:
	// [[l o] [lo w] [Ġ low] [Ġlow e]]
	// [261 117 118]
}

// TestGPT2FilesMatchTokenizerJSON: the same trained BPE as vocab.json +
// merges.txt (GPT-2 slow tokenizer, Megatron GPT2BPETokenizer) encodes
// like its tokenizer.json.
func TestGPT2FilesMatchTokenizerJSON(t *testing.T) {
	texts := opticksSample(t, 200)
	r, err := TrainBPE(slices.Values(texts[:150]), TrainOptions{VocabSize: 700})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), r.VocabJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), r.MergesTxt(), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(g.Identity(), "gpt2-bpe:") || g.EOS() != 0 {
		t.Errorf("identity %q eos %d, want gpt2-bpe:… and 0 (<|endoftext|> found as special)", g.Identity(), g.EOS())
	}
	for _, text := range append(texts[150:], "x<|endoftext|>y") {
		if a, b := g.Encode(text), h.Encode(text); !slices.Equal(a, b) {
			t.Fatalf("vocab.json+merges.txt and tokenizer.json differ on %.60q", text)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\na b c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokenizer(dir); err == nil || !strings.Contains(err.Error(), "merges.txt:2") {
		t.Errorf("bad merges.txt: err %v, want one naming merges.txt:2", err)
	}
}
