package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// repoScriptRE matches repository scripts named in help texts and the README.
var repoScriptRE = regexp.MustCompile(`\b(?:tools|scripts)/[A-Za-z0-9_./-]+\.(?:py|sh)\b`)

// Every script a command's help or the README tells the user to run is in
// the repository.
func TestHelpNamesOnlyScriptsThatExist(t *testing.T) {
	texts := map[string]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		texts[c.CommandPath()+" --help"] = c.Short + "\n" + c.Long + "\n" + c.Example + "\n" + c.Flags().FlagUsages()
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(newRootCmd())
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	texts["README.md"] = string(readme)
	seen := 0
	for where, text := range texts {
		for _, p := range repoScriptRE.FindAllString(text, -1) {
			seen++
			if _, err := os.Stat(filepath.Join("../..", p)); err != nil {
				t.Errorf("%s names %s, which is not in the repository", where, p)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no script named anywhere: the pattern or the help texts changed")
	}
}

// The PyTorch baseline takes the flags of the bench commands it is compared
// with, so a command line can be copied from one to the other.
func TestTorchBenchFlagsMatchBench(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3:", err)
	}
	for _, mode := range []string{"forward", "train"} {
		// --help is answered before torch is imported, so this runs without torch.
		out, err := exec.Command(py, "../../scripts/torch_bench.py", mode, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("torch_bench.py %s --help: %v\n%s", mode, err, out)
		}
		root := newRootCmd()
		cmd, _, err := root.Find([]string{"bench", mode})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"arch", "layers", "hidden", "heads", "kv-heads", "ffn", "vocab", "batch", "seq", "threads", "json", "device", "bf16", "no-tf32", "loss", "steps", "warmup", "iters"} {
			if cmd.Flags().Lookup(f) == nil {
				continue // not a flag of this bench command
			}
			if !strings.Contains(string(out), "--"+f) {
				t.Errorf("minitron bench %s has --%s but torch_bench.py %s does not:\n%s", mode, f, mode, out)
			}
		}
	}
}

// distill --help and the README's CUDA section say the same about which
// losses run with --device cuda: every loss flag runs there, only
// --top-k-cache is refused.
func TestDistillCUDALossesAgreeWithREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmd, _, err := newRootCmd().Find([]string{"distill"})
	if err != nil {
		t.Fatal(err)
	}
	section := func(where, text, start, end string) string {
		i := strings.Index(text, start)
		if i < 0 {
			t.Fatalf("%s: no %q", where, start)
		}
		text = text[i:]
		if j := strings.Index(text, end); j > 0 {
			text = text[:j]
		}
		// Backticks and line breaks do not change what a sentence says.
		return strings.Join(strings.Fields(strings.ReplaceAll(text, "`", "")), " ")
	}
	texts := map[string]string{
		"README.md":               section("README.md", string(readme), "`train` and `distill` take `--device cuda`", "`importance --device cuda`"),
		"minitron distill --help": section("distill --help", cmd.Long, "--device cuda", "--bf16 adds"),
	}
	for where, text := range texts {
		for _, f := range []string{"--ce", "--kl", "--reverse-kl", "--top-k", "--intermediate"} {
			// --top-k on its own, not as the start of --top-k-cache.
			if !regexp.MustCompile(regexp.QuoteMeta(f) + `[^-\w]`).MatchString(text) {
				t.Errorf("%s does not list %s among the losses that run on cuda:\n%s", where, f, text)
			}
		}
		for _, s := range strings.FieldsFunc(text, func(r rune) bool { return r == '.' || r == ';' }) {
			if strings.Contains(s, "refused") && (!strings.Contains(s, "--top-k-cache") || strings.Contains(s, "--intermediate")) {
				t.Errorf("%s refuses something other than --top-k-cache on cuda: %q", where, s)
			}
		}
	}
}
