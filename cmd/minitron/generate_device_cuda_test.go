//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// generate --device cuda (on the CPU emulator without a GPU) prints what
// generate on the CPU prints, TF32 off: greedy token for token, stopping on
// EOS as the CPU does (the EOS id in new_ids, stopped_on_eos), and sampled
// with the same seed the same tokens (host sampling over the downloaded
// logits, which agree with the CPU's to float32 rounding).

// generateJSON is generate --json's output.
type generateJSON struct {
	Prompt []int  `json:"prompt_ids"`
	New    []int  `json:"new_ids"`
	Text   string `json:"text"`
	EOS    bool   `json:"stopped_on_eos"`
}

// generateBoth runs generate with args on the CPU and with --device cuda
// --no-tf32 and checks the outputs are identical; it returns the output.
func generateBoth(t *testing.T, reason string, args ...string) string {
	t.Helper()
	args = append([]string{"generate"}, args...)
	cpu, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("%s: cpu: %v", reason, err)
	}
	dev, err := runCLI(t, append(args, "--device", "cuda", "--no-tf32")...)
	if err != nil {
		t.Fatalf("%s: cuda: %v", reason, err)
	}
	if dev != cpu {
		t.Errorf("%s: cuda printed\n%s\nthe CPU\n%s", reason, dev, cpu)
	}
	return cpu
}

func parseGenerateJSON(t *testing.T, s string) generateJSON {
	t.Helper()
	var res generateJSON
	if err := json.Unmarshal([]byte(s), &res); err != nil {
		t.Fatalf("%v: %q", err, s)
	}
	return res
}

// Greedy and sampled from token ids on the golden nemotron (partial RoPE,
// LayerNorm1P), and stopping on EOS: a copy whose config's eos_token_id is
// the 4th token greedy decoding produces.
func TestGenerateDeviceCUDA(t *testing.T) {
	ids := []string{"--model", goldenNemotron, "--ids", "5,9,11", "--max-new-tokens", "8"}
	greedy := parseGenerateJSON(t, generateBoth(t, "greedy", append(ids, "--json")...))
	if len(greedy.New) != 8 || greedy.EOS {
		t.Fatalf("greedy: %+v, want 8 new tokens without EOS (the golden EOS 3 not generated)", greedy)
	}
	generateBoth(t, "greedy, plain output", ids...)
	var sampled []generateJSON
	for _, c := range [][]string{
		{"--temperature", "1", "--seed", "1"},
		{"--temperature", "0.8", "--top-k", "40", "--seed", "2"},
		{"--temperature", "1.2", "--top-p", "0.9", "--seed", "3"},
		{"--temperature", "0.9", "--top-k", "50", "--top-p", "0.95", "--seed", "4"},
	} {
		sampled = append(sampled, parseGenerateJSON(t, generateBoth(t, "sampled "+strings.Join(c, " "), append(append(ids, "--json"), c...)...)))
	}
	leaves := false
	for _, s := range sampled {
		leaves = leaves || !slices.Equal(s.New, greedy.New)
	}
	if !leaves {
		t.Error("every sampled run gave the greedy tokens: the sampled cases prove nothing")
	}

	// EOS: the greedy run's 4th token becomes the model's EOS.
	dir := filepath.Join(t.TempDir(), "eos")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{}
	b, err := os.ReadFile(filepath.Join(goldenNemotron, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["eos_token_id"] = greedy.New[3]
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(mustAbs(t, goldenNemotron), "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	stopped := parseGenerateJSON(t, generateBoth(t, "greedy, stops on EOS", "--model", dir, "--ids", "5,9,11", "--max-new-tokens", "8", "--json"))
	first := 0
	for greedy.New[first] != greedy.New[3] {
		first++
	}
	t.Logf("greedy %v; with EOS %d: %v (stopped_on_eos %v)", greedy.New, greedy.New[3], stopped.New, stopped.EOS)
	if !stopped.EOS || !slices.Equal(stopped.New, greedy.New[:first+1]) {
		t.Errorf("with EOS %d: %+v, want %v and stopped_on_eos", greedy.New[3], stopped, greedy.New[:first+1])
	}
}

// A text prompt through the tokenizer (BOS prepended, text decoded) on the
// eval golden llama, greedy and sampled; --max-length counts the prompt.
func TestGeneratePromptDeviceCUDA(t *testing.T) {
	m := tinyEvalModel(t, true)
	base := []string{"--model", m, "--prompt", "The cat sat on the", "--max-new-tokens", "6"}
	res := parseGenerateJSON(t, generateBoth(t, "greedy text, json", append(base, "--json")...))
	if len(res.Prompt) < 2 || len(res.New) == 0 {
		t.Fatalf("greedy text: %+v", res)
	}
	txt := generateBoth(t, "sampled text", append(base, "--temperature", "0.8", "--top-k", "30", "--seed", "7")...)
	if !strings.HasPrefix(txt, "The cat sat on the") {
		t.Errorf("text output %q", txt)
	}
	generateBoth(t, "--max-length", "--model", m, "--ids", "304,17,99", "--max-length", "9", "--temperature", "1", "--seed", "5", "--json")
}

// --bf16 (bf16-only weight matrices on the GPU) runs with the default TF32
// and prints the CPU command's shape of output; its tokens may differ from
// the f32 CPU's (bf16 products), so only the form is checked. A bad id is
// refused as on the CPU.
func TestGenerateBF16DeviceCUDA(t *testing.T) {
	got, err := runCLI(t, "generate", "--model", goldenNemotron, "--ids", "5,9,11", "--max-new-tokens", "5", "--json", "--device", "cuda", "--bf16")
	if err != nil {
		t.Fatal(err)
	}
	res := parseGenerateJSON(t, got)
	if !slices.Equal(res.Prompt, []int{5, 9, 11}) || (len(res.New) != 5 && !res.EOS) {
		t.Errorf("bf16: %+v", res)
	}
	for _, id := range res.New {
		if id < 0 || id >= 256 {
			t.Errorf("bf16: token %d outside the vocabulary", id)
		}
	}
	if _, err := runCLI(t, "generate", "--model", goldenNemotron, "--ids", "5,999", "--max-new-tokens", "2", "--device", "cuda"); err == nil || !strings.Contains(err.Error(), "outside the model's vocabulary") {
		t.Errorf("an id outside the vocabulary: %v", err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
