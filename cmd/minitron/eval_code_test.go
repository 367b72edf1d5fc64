package main

import (
	"encoding/json"
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
