package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/eval"
)

// writeSamples writes a samples jsonl of completions per task id.
func writeSamples(t *testing.T, samples []eval.CodeSample) string {
	t.Helper()
	var b strings.Builder
	for _, s := range samples {
		j, _ := json.Marshal(s)
		b.Write(j)
		b.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), "samples.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvalCode(t *testing.T) {
	problems := filepath.Join(evalFixtures, "code", "humaneval.jsonl")
	docs, err := eval.ReadCodeProblems(problems)
	if err != nil {
		t.Fatal(err)
	}
	var canon, mixed []eval.CodeSample
	for i, d := range docs {
		canon = append(canon, eval.CodeSample{TaskID: d.Problem.TaskID, Completion: d.Problem.Canonical})
		// Ten samples of each problem, i+1 of them correct.
		for j := 0; j < 10; j++ {
			c := "    raise ValueError('wrong')\n"
			if j <= i {
				c = d.Problem.Canonical
			}
			mixed = append(mixed, eval.CodeSample{TaskID: d.Problem.TaskID, Completion: c})
		}
	}
	// The default limits: every sample here ends at once, but a loaded
	// machine may take seconds to start python3.
	args := []string{"eval", "code", "--problems", problems}
	out, err := runCLI(t, append(args, "--samples", writeSamples(t, canon))...)
	if err != nil {
		if strings.Contains(err.Error(), "no python3") {
			t.Skip(err)
		}
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "pass@1 1.0000") || strings.Contains(out, "pass@10") {
		t.Errorf("canonical solutions, one sample each: want pass@1 1.0000 and no pass@10:\n%s", out)
	}
	out, err = runCLI(t, append(args, "--samples", writeSamples(t, mixed), "--json")...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res eval.CodeScore
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// pass@1 is the mean fraction correct: (1+2+3+4)/10/4; pass@10 is 1.
	if p := res.PassAtK["pass@1"]; p < 0.25-1e-12 || p > 0.25+1e-12 || res.PassAtK["pass@10"] != 1 || len(res.Enforced) == 0 {
		t.Errorf("mixed samples: %+v", res.PassAtK)
	}
	bad := writeSamples(t, []eval.CodeSample{{TaskID: "Nope/9", Completion: "pass"}})
	if _, err := runCLI(t, append(args, "--samples", bad)...); err == nil || !strings.Contains(err.Error(), `"Nope/9"`) {
		t.Errorf("unknown task id: got %v, want an error naming it", err)
	}
}

// TestEvalCodeBadSamples: through the command, completions that only pass
// by breaking out (or that attack the machine) all fail, and the file one
// of them tries to write outside its directory does not appear.
func TestEvalCodeBadSamples(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: no process limit, network or filesystem isolation to check (eval code lists what is enforced; the eval package's sandbox tests cover the rest)")
	}
	problems := filepath.Join(evalFixtures, "code", "humaneval.jsonl")
	escape := filepath.Join(os.TempDir(), fmt.Sprintf("minitron-eval-code-escape-%d", os.Getpid()))
	defer os.Remove(escape)
	bad := []string{
		"    return a - b\n",
		"    return a +\n",
		"    import os\n    while True:\n        os.fork()\n",
		"    x = bytearray(10 * 1024 ** 3)\n    return a + b\n",
		fmt.Sprintf("    open(%q, 'w').write('x')\n    return a + b\n", escape),
		"    import urllib.request\n    urllib.request.urlopen('http://1.1.1.1', timeout=1)\n    return a + b\n",
	}
	var samples []eval.CodeSample
	for _, c := range bad {
		samples = append(samples, eval.CodeSample{TaskID: "Toy/0", Completion: c})
	}
	out, err := runCLI(t, "eval", "code", "--problems", problems, "--samples", writeSamples(t, samples), "--json", "--wall", "3s", "--cpu", "2s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res eval.CodeScore
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.PassAtK["pass@1"] != 0 || len(res.Items) != 1 || res.Items[0].Correct != 0 {
		t.Errorf("bad completions scored %v: %+v", res.PassAtK, res.Items)
	}
	for i, r := range res.Items[0].Results {
		t.Logf("%d: %s", i, r)
	}
	if _, err := os.Stat(escape); err == nil {
		t.Errorf("a sample wrote %s outside its directory", escape)
	}
}
