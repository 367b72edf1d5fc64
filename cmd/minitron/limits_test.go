package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/model"
)

// randomModel writes a small random llama checkpoint with the given
// vocabulary and max_position_embeddings.
func randomModel(t *testing.T, vocab, maxPos int) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := model.SyntheticConfig(model.Llama, 1, 16, 2, 1, 32, vocab)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxPositionEmbeddings = maxPos
	if err := model.RandomCheckpoint(dir, cfg, model.F32, 1, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

func seqIDs(n, vocab int) string {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = (i*7919 + 3) % vocab
	}
	return joinIDs(ids)
}

func TestEvalNLLStreamsLogits(t *testing.T) {
	// 3000 tokens at vocabulary 32000: the [T, V] f32 logits are 366 MiB;
	// the mean NLL needs none of them at once (model.TokenNLL runs the head
	// over blocks of the vocabulary). Bytes allocated, not time, is the
	// measure; the test must not run in parallel.
	const T, V = 3000, 32000
	dir := randomModel(t, V, 4096)
	ids := seqIDs(T, V)
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	out, err := runCLI(t, "eval", "nll", "--model", dir, "--ids", ids, "--json", "--weights", "resident")
	runtime.ReadMemStats(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, `{"mean_nll":`) {
		t.Fatalf("output %.80s", out)
	}
	full := uint64(T * V * 4)
	if used := b.TotalAlloc - a.TotalAlloc; used >= full/2 {
		t.Errorf("eval nll allocated %d MiB; the full logits are %d MiB and must not be held", used>>20, full>>20)
	}
}

func TestForwardCommandsEnforceMaxPositions(t *testing.T) {
	dir := randomModel(t, 64, 16)
	cases := []struct {
		name   string
		args   []string
		reason string
	}{
		{"eval nll", []string{"eval", "nll", "--model", dir, "--ids", seqIDs(17, 64)}, "17 ids past 16 positions"},
		{"generate", []string{"generate", "--model", dir, "--ids", seqIDs(10, 64), "--max-new-tokens", "7"}, "prompt + new tokens past 16 positions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runCLI(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), "max_position_embeddings") || !strings.Contains(err.Error(), "16") {
				t.Fatalf("got %v; want the limit named (%s)", err, c.reason)
			}
		})
	}
	if _, err := runCLI(t, "eval", "nll", "--model", dir, "--ids", seqIDs(16, 64)); err != nil {
		t.Errorf("16 ids fit 16 positions: %v", err)
	}
}

func TestForwardCommandsRefuseNonFiniteWeights(t *testing.T) {
	dir := randomModel(t, 64, 64)
	src, err := model.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := model.LoadMem(src)
	cfg := src.Config()
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	const name = "model.layers.0.self_attn.o_proj.weight"
	w, info, _ := mem.Get(name)
	w[3] = float32(math.NaN())
	mem.SetF32(name, info.Shape, w)
	bad := t.TempDir()
	cfg.BOSTokenID = 1 // eval ppl conditions the first token on it
	if err := model.SaveCheckpoint(bad, cfg, mem, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(t.TempDir(), "docs")
	if err := data.WriteIndexed(prefix, data.DTypeForVocab(64), [][]int32{{1, 5, 9, 12, 3, 7}, {2, 4, 6, 8}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		reason string
	}{
		{"eval nll", []string{"eval", "nll", "--model", bad, "--ids", "1,5,9,12"}, "mean_nll NaN with exit 0"},
		{"eval ppl", []string{"eval", "ppl", "--model", bad, "--data", prefix, "--seq-len", "8"}, "token loss NaN with exit 0"},
		{"eval nll logits", []string{"eval", "nll", "--model", bad, "--ids", "1,5,9,12", "--logits-out", filepath.Join(t.TempDir(), "l.safetensors")}, "the full-logits path too"},
		{"generate", []string{"generate", "--model", bad, "--ids", "1,5", "--max-new-tokens", "4"}, "token 0 forever"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runCLI(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), bad) {
				t.Fatalf("got %v; want the tensor and the checkpoint named (%s)", err, c.reason)
			}
		})
	}
}

func TestGenerateRejectsBadNumbers(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		want   string
		reason string
	}{
		{"negative max-new-tokens", []string{"--max-new-tokens", "-3"}, "--max-new-tokens", "a negative count fell back to --max-length silently"},
		{"top-k without temperature", []string{"--max-new-tokens", "2", "--top-k", "5"}, "Temperature", "temperature 0 is greedy: top-k would be ignored"},
		{"top-p without temperature", []string{"--max-new-tokens", "2", "--top-p", "0.5"}, "Temperature", "temperature 0 is greedy: top-p would be ignored"},
		{"infinite temperature", []string{"--max-new-tokens", "2", "--temperature", "+Inf"}, "temperature", "an infinite temperature is a uniform draw, not a setting"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"generate", "--model", goldenNemotron, "--ids", "5,9"}, c.args...)
			_, err := runCLI(t, args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want an error naming %q (%s)", err, c.want, c.reason)
			}
		})
	}
	// Sampling options with a temperature, and greedy without them, run.
	for _, ok := range [][]string{{"--temperature", "0.7", "--top-k", "5", "--top-p", "0.9"}, {"--temperature", "0"}} {
		args := append([]string{"generate", "--model", goldenNemotron, "--ids", "5,9", "--max-new-tokens", "2"}, ok...)
		if _, err := runCLI(t, args...); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

func TestDataPrepareRefusesExistingPrefix(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "a.txt")
	os.WriteFile(in, []byte("some text to tokenise\n"), 0o644)
	out := filepath.Join(dir, "ds")
	args := []string{"data", "prepare", "--input", in, "--tokenizer", testTokenizer, "--out", out}
	if _, err := runCLI(t, args...); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(out + ".manifest.json")
	_, err := runCLI(t, args...)
	if err == nil || !strings.Contains(err.Error(), out+"_train.bin") || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("second prepare at the same prefix: got %v; want the existing file and --overwrite named", err)
	}
	if after, _ := os.ReadFile(out + ".manifest.json"); string(after) != string(before) {
		t.Error("the refused run changed the manifest")
	}
	if _, err := runCLI(t, append(args, "--overwrite")...); err != nil {
		t.Errorf("--overwrite: %v", err)
	}
}

func TestImportanceRefusesExistingOut(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := filepath.Dir(dir)
	args := func(out string, extra ...string) []string {
		return append([]string{"importance", "--model", dir, "--data", prefix, "--samples", "2", "--seq-len", "8",
			"--batch", "1", "--layer-metrics", "none", "--out", out}, extra...)
	}
	cfgPath := filepath.Join(dir, "config.json")
	cfgBefore, _ := os.ReadFile(cfgPath)
	cases := []struct {
		name   string
		args   []string
		want   string
		reason string
	}{
		{"checkpoint config", args(cfgPath), "is a file of the checkpoint", "the checkpoint's own config.json was replaced by scores"},
		{"checkpoint config with overwrite", args(cfgPath, "--overwrite"), "is a file of the checkpoint", "even when told, a checkpoint's own files are not an output"},
		{"checkpoint weights", args(filepath.Join(dir, "model.safetensors"), "--overwrite"), "is a file of the checkpoint", "the weights themselves"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runCLI(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want %q (%s)", err, c.want, c.reason)
			}
			if b, _ := os.ReadFile(cfgPath); string(b) != string(cfgBefore) {
				t.Fatalf("config.json changed (%s)", c.reason)
			}
		})
	}
	out := filepath.Join(root, "scores.json")
	if _, err := runCLI(t, args(out)...); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, args(out)...); err == nil || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("a second run onto %s: got %v; want it refused naming --overwrite", out, err)
	}
	if _, err := runCLI(t, args(out, "--overwrite")...); err != nil {
		t.Errorf("--overwrite: %v", err)
	}
}

func TestTokenizerTrainRefusesCheckpointFiles(t *testing.T) {
	// --out DIR of a checkpoint replaced its own tokenizer.json.
	dir := t.TempDir()
	tokPath := filepath.Join(dir, "tokenizer.json")
	os.WriteFile(tokPath, []byte(`{"checkpoint's own": true}`), 0o644)
	in := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(in, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 50)), 0o644)
	args := []string{"tokenizer", "train", "--input", in, "--vocab-size", "300", "--out", dir}
	_, err := runCLI(t, args...)
	if err == nil || !strings.Contains(err.Error(), tokPath) || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("got %v; want %s named and --overwrite", err, tokPath)
	}
	if b, _ := os.ReadFile(tokPath); string(b) != `{"checkpoint's own": true}` {
		t.Fatal("the existing tokenizer.json was replaced")
	}
	for _, n := range []string{"tokenizer_config.json", "vocab.json", "merges.txt"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("a refused run wrote %s", n)
		}
	}
	if _, err := runCLI(t, append(args, "--overwrite")...); err != nil {
		t.Errorf("--overwrite: %v", err)
	}
}
