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

// gpt2Python is an independent byte-level BPE encoder in the style of
// OpenAI's GPT-2 encoder.py (regex split, bytes_to_unicode, lowest-rank
// bigram merged everywhere until none applies), plus Llama-3's
// ignore_merges and special-token splitting. It reads the tokenizer.json.
const gpt2Python = `
import json, sys
import regex
tok = json.load(open(sys.argv[1], encoding="utf-8"))
lines = json.load(open(sys.argv[2], encoding="utf-8"))
model = tok["model"]
vocab = model["vocab"]
ranks = {}
for i, m in enumerate(model["merges"]):
    a, b = m.split(" ") if isinstance(m, str) else m
    ranks.setdefault((a, b), i)
pre = tok["pre_tokenizer"]
if pre["type"] == "ByteLevel":
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
else:
    pat = pre["pretokenizers"][0]["pattern"]["Regex"]
specials = {a["content"]: a["id"] for a in tok["added_tokens"]}
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
b2u = dict(zip(bs, map(chr, cs)))

def bpe(word):
    if model.get("ignore_merges") and word in vocab:
        return [word]
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((parts[i], parts[i + 1]), 1 << 60), i) for i in range(len(parts) - 1)]
        r, _ = min(pairs)
        if r == 1 << 60:
            break
        a, b = min(pairs)[1], None
        first, second = parts[a], parts[a + 1]
        out, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                out.append(first + second); i += 2
            else:
                out.append(parts[i]); i += 1
        parts = out
    return parts

def encode(text):
    ids = []
    if specials:
        segs = regex.split("(" + "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")", text)
    else:
        segs = [text]
    for seg in segs:
        if seg in specials:
            ids.append(specials[seg]); continue
        for piece in regex.findall(pat, seg):
            word = "".join(b2u[b] for b in piece.encode("utf-8"))
            ids.extend(vocab[t] for t in bpe(word))
    return ids

print(json.dumps([encode(l) for l in lines]))
`

// TestByteLevelDifferential compares Encode of trained byte-level
// tokenizers (GPT-2 and Llama-3 layouts) with gpt2Python on Go source and
// random strings.
func TestByteLevelDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("needs python3 regex; slow")
	}
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import regex").Run(); err != nil {
		t.Skip("python3 regex not available:", err)
	}
	texts := goSrc(t, 150<<10, 23)
	r := rand.New(rand.NewSource(5))
	alpha := []string{" ", "  ", "\t", "\n", "\r\n", "the", "'s", "'LL", "x", "12345", "٣", "é", "日本", "🙂", "<|endoftext|>", "<|pad|>", "\u00a0", "..."}
	for i := 0; i < 500; i++ {
		var b strings.Builder
		for k := 0; k < 1+r.Intn(15); k++ {
			b.WriteString(alpha[r.Intn(len(alpha))])
		}
		texts = append(texts, b.String())
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "lines.json")
	jb, _ := json.Marshal(texts)
	if err := os.WriteFile(in, jb, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pat := range []string{"gpt2", "llama3"} {
		res, err := TrainBPE(slices.Values(texts[:len(texts)/2]), TrainOptions{VocabSize: 3000, Pattern: pat})
		if err != nil {
			t.Fatal(err)
		}
		js := res.TokenizerJSON()
		if pat == "llama3" { // exercise ignore_merges too
			js = []byte(strings.Replace(string(js), `"ignore_merges": false`, `"ignore_merges": true`, 1))
		}
		path := filepath.Join(dir, pat+".json")
		if err := os.WriteFile(path, js, 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := ParseHFTokenizer(js)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "-c", gpt2Python, path, in).Output()
		if err != nil {
			t.Fatalf("%s: python: %v", pat, err)
		}
		var want [][]int
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		bad := 0
		for i, text := range texts {
			if got := tok.Encode(text); !slices.Equal(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
				bad++
				if bad <= 3 {
					t.Errorf("%s Encode(%.60q)\n got %v\nwant %v", pat, text, got[:min(len(got), 30)], want[i][:min(len(want[i]), 30)])
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d texts differ", pat, bad, len(texts))
		}
	}
}
