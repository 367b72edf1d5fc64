package eval

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testLimits are short so the bad samples cost little on CI's 2 cores.
var testLimits = Limits{Wall: 2 * time.Second, CPU: time.Second}

// goodLimits are the defaults, for samples that should pass: a loaded
// machine may take seconds to start python3, and passing samples end early
// whatever the limit.
var goodLimits = Limits{}

func newTestSandbox(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := NewSandbox(testLimits)
	if err != nil {
		t.Skipf("no sandbox here: %v", err)
	}
	t.Cleanup(sb.Close)
	t.Logf("sandbox enforces:\n  %s", strings.Join(sb.Enforced(), "\n  "))
	return sb
}

func codeFixture(t *testing.T, name string) []Doc {
	t.Helper()
	docs, err := ReadCodeProblems(filepath.Join("testdata", "code", name))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestCanonicalSolutionsPass: every canonical solution of the HumanEval- and
// MBPP-format fixtures passes, so pass@1 is 1.
func TestCanonicalSolutionsPass(t *testing.T) {
	newTestSandbox(t)
	for _, f := range []string{"humaneval.jsonl", "mbpp.jsonl", "humaneval.jsonl (3 in parallel)"} {
		docs := codeFixture(t, strings.Fields(f)[0])
		samples := map[string][]string{}
		for _, d := range docs {
			samples[d.Problem.TaskID] = []string{d.Problem.Canonical}
		}
		lim := goodLimits
		if strings.Contains(f, "parallel") {
			lim.Parallel = 3
		}
		res, err := ScoreCodeSamples(docs, samples, CodeScoreOptions{Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if res.PassAtK["pass@1"] != 1 || res.Problems != len(docs) {
			for _, it := range res.Items {
				t.Logf("%s: %v", it.TaskID, it.Results)
			}
			t.Errorf("%s: canonical solutions score %v on %d problems, want pass@1 = 1 on %d", f, res.PassAtK, res.Problems, len(docs))
		}
	}
}

// sandboxProcs lists live processes working in a directory of sandbox
// base or whose command line holds marker (other tests' sandboxes, running
// at the same time as the same user, are not counted).
func sandboxProcs(base, marker string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		c := strings.ReplaceAll(string(cmd), "\x00", " ")
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.HasPrefix(cwd, base) || strings.Contains(c, marker) {
			out = append(out, e.Name()+": "+c)
		}
	}
	return out
}

// TestSandboxBadCompletions runs completions that would pass the tests of
// Toy/0 (add) only if they broke out of the sandbox, or that attack it;
// every one must fail, within the limits, leaving nothing behind.
func TestSandboxBadCompletions(t *testing.T) {
	sb := newTestSandbox(t)
	prob := codeFixture(t, "humaneval.jsonl")[0].Problem
	// A world-writable directory outside the sample's, so only the
	// read-only mounts (not permissions) keep the sample out.
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(outside), 0o755); err != nil {
		t.Fatal(err)
	}
	escapeFile := filepath.Join(outside, "escaped")
	tmpFile := filepath.Join(os.TempDir(), fmt.Sprintf("minitron-escape-%d", os.Getpid()))
	defer os.Remove(tmpFile)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	marker := fmt.Sprintf("98%05d", os.Getpid()%100000)
	cases := []struct {
		reason, completion string
		// escapes: the sample breaks out only if this holds afterwards.
		escaped func() bool
	}{
		{"wrong answer", "    return a - b\n", nil},
		{"syntax error", "    return a +\n", nil},
		{"infinite loop: the CPU limit kills it", "    while True:\n        pass\n", nil},
		{"sleeping forever: the wall limit kills it", "    import time\n    time.sleep(3600)\n", nil},
		{"fork bomb: the process limit stops it", "    import os\n    while True:\n        os.fork()\n", nil},
		{"posing as a sandbox failure (stops nothing: setup failures come on a channel the sample lacks)", "    import os, sys\n    sys.stderr.write('sandbox: setup failed\\n')\n    try:\n        os.write(3, b'x')\n    except OSError:\n        pass\n    sys.exit(97)\n", nil},
		{"10 GB allocation: the address-space limit refuses it", "    x = bytearray(10 * 1024 ** 3)\n    return a + b\n", nil},
		{"writing outside its directory (a world-writable one)", fmt.Sprintf("    open(%q, 'w').write('x')\n    return a + b\n", escapeFile),
			func() bool { _, err := os.Stat(escapeFile); return err == nil }},
		{"writing to /tmp", fmt.Sprintf("    open(%q, 'w').write('x')\n    return a + b\n", tmpFile),
			func() bool { _, err := os.Stat(tmpFile); return err == nil }},
		{"opening a socket to a listener on this machine", fmt.Sprintf("    import socket\n    socket.create_connection(('127.0.0.1', %d), timeout=2).close()\n    return a + b\n", port),
			func() bool { return len(accepted) > 0 }},
		{"a daemon left behind (double fork, new session) that would outlive the sample", fmt.Sprintf(
			"    import os\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            os.execv('/bin/sleep', ['sleep', '%s'])\n        os._exit(0)\n    return a - b\n", marker),
			func() bool { time.Sleep(200 * time.Millisecond); return len(sandboxProcs(sb.base, marker)) > 0 }},
	}
	comps := make([]string, len(cases))
	for i, c := range cases {
		comps[i] = c.completion
	}
	start := time.Now()
	out, err := sb.RunProblem(prob, comps)
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	enforcedAll := os.Geteuid() == 0 && sb.cloneflags != 0
	for i, c := range cases {
		res := out.Results[i]
		t.Logf("%-75s → %s", c.reason, res)
		if res == string(StatusPassed) {
			if !enforcedAll {
				t.Logf("  (not enforced on this machine, see the list above)")
				continue
			}
			t.Errorf("%s: the sample passed: %s", c.reason, res)
		}
		if c.escaped != nil && c.escaped() {
			if !enforcedAll {
				t.Logf("  escaped: not prevented on this machine")
				continue
			}
			t.Errorf("%s: escaped the sandbox", c.reason)
		}
	}
	if out.Correct != 0 && enforcedAll {
		t.Errorf("%d bad completions passed", out.Correct)
	}
	// Each sample ends within its wall limit plus the time to reap it.
	if max := time.Duration(len(cases)) * (testLimits.Wall + time.Second); total > max {
		t.Errorf("bad completions took %v, over the %v their limits allow", total, max)
	}
	t.Logf("%d bad completions ran in %v", len(cases), total.Round(time.Millisecond))
	if left := sandboxProcs(sb.base, marker); len(left) > 0 && enforcedAll {
		t.Errorf("processes left behind: %q", left)
	}
}

// TestPassAtK compares the product form with the closed form
// 1 − C(n−c, k)/C(n, k) on hand-made counts.
func TestPassAtK(t *testing.T) {
	binom := func(n, k int) float64 {
		if k < 0 || k > n {
			return 0
		}
		r := 1.0
		for i := 1; i <= k; i++ {
			r = r * float64(n-k+i) / float64(i)
		}
		return r
	}
	cases := []struct {
		reason  string
		n, c, k int
		want    float64
	}{
		{"nothing correct", 10, 0, 1, 0},
		{"all correct", 10, 10, 5, 1},
		{"pass@1 is the fraction correct", 10, 3, 1, 0.3},
		{"k larger than the failures: certain", 10, 8, 3, 1},
		{"one sample", 1, 1, 1, 1},
		{"n 200, c 13, k 10 (Codex-sized)", 200, 13, 10, 1 - binom(187, 10)/binom(200, 10)},
		{"n 20, c 2, k 5", 20, 2, 5, 1 - binom(18, 5)/binom(20, 5)},
		{"n 100, c 1, k 100", 100, 1, 100, 1},
		{"n 100, c 37, k 10", 100, 37, 10, 1 - binom(63, 10)/binom(100, 10)},
	}
	for _, c := range cases {
		if got := PassAtK(c.n, c.c, c.k); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: PassAtK(%d, %d, %d) = %.15g, want %.15g", c.reason, c.n, c.c, c.k, got, c.want)
		}
	}
	if !math.IsNaN(PassAtK(5, 1, 10)) {
		t.Errorf("k > n must be undefined (NaN)")
	}
}

// TestSandboxWithoutNamespaces runs the fallback used where the kernel
// refuses namespaces (forced here): the limits still stop runaway samples,
// and a daemon left in the sample's directory is killed.
func TestSandboxWithoutNamespaces(t *testing.T) {
	sb := newTestSandbox(t)
	sb.cloneflags = 0
	prob := codeFixture(t, "humaneval.jsonl")[0].Problem
	marker := fmt.Sprintf("96%05d", os.Getpid()%100000)
	cases := []struct{ reason, completion string }{
		{"10 GB allocation", "    x = bytearray(10 * 1024 ** 3)\n    return a + b\n"},
		{"a daemon in the sample's directory", fmt.Sprintf(
			"    import os\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            os.execv('/bin/sleep', ['sleep', '%s'])\n        os._exit(0)\n    return a - b\n", marker)},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, struct{ reason, completion string }{"fork bomb (its user's process limit)", "    import os\n    while True:\n        os.fork()\n"})
	}
	comps := make([]string, len(cases))
	for i, c := range cases {
		comps[i] = c.completion
	}
	out, err := sb.RunProblem(prob, comps)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		t.Logf("%-40s → %s", c.reason, out.Results[i])
		if out.Results[i] == string(StatusPassed) {
			t.Errorf("%s passed", c.reason)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if left := sandboxProcs(sb.base, marker); len(left) > 0 {
		t.Errorf("processes left behind: %q", left)
	}
}

// TestSandboxParallel runs fork bombs beside canonical solutions: each
// parallel slot is its own user, so the bombs' process limit does not
// starve the others, which pass.
func TestSandboxParallel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: samples run as this user, without a per-slot user to isolate process limits")
	}
	// The good samples get the default time limits: beside fork bombs on a
	// loaded machine they may need seconds. (The bombs end by themselves:
	// the sample dies of its first refused fork.)
	lim := goodLimits
	lim.Parallel = 3
	sb, err := NewSandbox(lim)
	if err != nil {
		t.Skipf("no sandbox here: %v", err)
	}
	defer sb.Close()
	prob := codeFixture(t, "humaneval.jsonl")[0].Problem
	bomb := "    import os\n    while True:\n        os.fork()\n"
	// A correct answer that starts a process once the bombs beside it have
	// had time to use up their user's process limit.
	good := "    import subprocess, time\n    time.sleep(0.3)\n    subprocess.run(['true'], check=True)\n    return a + b\n"
	comps := []string{bomb, good, bomb, good, good, bomb}
	out, err := sb.RunProblem(prob, comps)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out.Results {
		if want := comps[i] == good; (r == string(StatusPassed)) != want {
			t.Errorf("sample %d (canonical %v): %s", i, want, r)
		}
	}
	// "\x00" never occurs in a command line as read: only the working
	// directory counts.
	if left := sandboxProcs(sb.base, "\x00"); len(left) > 0 {
		t.Errorf("processes left behind: %q", left)
	}
}
