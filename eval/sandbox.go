package eval

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits confine one executed sample. Zero fields take DefaultLimits'.
type Limits struct {
	// Wall is the wall-clock limit; the sample's processes are killed when
	// it passes.
	Wall time.Duration `json:"wall"`
	// CPU is the CPU-time limit (RLIMIT_CPU).
	CPU time.Duration `json:"cpu"`
	// Memory caps the address space in bytes (RLIMIT_AS).
	Memory int64 `json:"memory"`
	// Procs caps the processes of the sandbox user (RLIMIT_NPROC).
	Procs int `json:"procs"`
	// FileSize caps any file the sample writes, in bytes (RLIMIT_FSIZE).
	FileSize int64 `json:"file_size"`
	// Python is the interpreter (default /usr/bin/python3, else python3 on
	// PATH).
	Python string `json:"python"`
	// Parallel is how many samples run at once (default 1); each runs as
	// its own user, so one sample's processes do not count against
	// another's limit.
	Parallel int `json:"parallel"`
}

// DefaultLimits are generous for HumanEval/MBPP tests, which run in well
// under a second, and tight enough that a bad sample costs little.
var DefaultLimits = Limits{Wall: 10 * time.Second, CPU: 5 * time.Second, Memory: 1 << 30, Procs: 32, FileSize: 16 << 20}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.Wall <= 0 {
		l.Wall = d.Wall
	}
	if l.CPU <= 0 {
		l.CPU = d.CPU
	}
	if l.Memory <= 0 {
		l.Memory = d.Memory
	}
	if l.Procs <= 0 {
		l.Procs = d.Procs
	}
	if l.FileSize <= 0 {
		l.FileSize = d.FileSize
	}
	l.Parallel = max(l.Parallel, 1)
	return l
}

// Samples run as users of their own when we are root: RLIMIT_NPROC does
// not bind root, and an unprivileged user cannot undo the read-only mounts.
// Each parallel slot of each sandbox gets a user id no system or person
// uses, from a range chosen by process id and sandbox, so the process
// limit of one sample is not shared with any other sample (of this run or
// of another run at the same time), and whatever runs as that user after a
// sample is the sample's and can be killed.
const (
	sandboxUIDBase = 1_000_000_000
	maxParallel    = 100
)

var sandboxCount atomic.Int64

//go:embed sandbox_launch.py
var launcherSource []byte

// Sandbox runs untrusted Python programs, each in a separate python3
// process in a fresh directory under limits (see Enforced for what this
// machine allows).
type Sandbox struct {
	lim      Limits
	python   string
	base     string
	launcher string
	// What the kernel let us use: namespaces (network, mount, PID) and a
	// drop to an unprivileged user; found once by a probe run.
	cloneflags uintptr
	drop       bool
	mu         sync.Mutex
	seq        int
	// slots hands out the parallel slots (and so the users) of Run.
	slots chan int
	// uidBase + slot is the user a sample runs as.
	uidBase int
}

// NewSandbox prepares a sandbox: finds python3 and probes which isolation
// the kernel grants (as root: new network, mount and PID namespaces and a
// drop to a user of its own; otherwise resource limits and a process group
// only).
func NewSandbox(l Limits) (*Sandbox, error) {
	l = l.withDefaults()
	py := l.Python
	if py == "" {
		py = "/usr/bin/python3"
		if _, err := os.Stat(py); err != nil {
			if py, err = exec.LookPath("python3"); err != nil {
				return nil, fmt.Errorf("sandbox: no python3 to run code samples with (Limits.Python)")
			}
		}
	}
	base, err := os.MkdirTemp("", "minitron-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	// Samples (as nobody) may pass through base but not list or write it.
	if err := os.Chmod(base, 0o711); err != nil {
		os.RemoveAll(base)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if l.Parallel > maxParallel {
		os.RemoveAll(base)
		return nil, fmt.Errorf("sandbox: Parallel %d exceeds %d", l.Parallel, maxParallel)
	}
	s := &Sandbox{lim: l, python: py, base: base, launcher: filepath.Join(base, "launch.py"), slots: make(chan int, l.Parallel),
		uidBase: sandboxUIDBase + (os.Getpid()%100000)*1000 + int(sandboxCount.Add(1)%10)*maxParallel}
	for w := 0; w < l.Parallel; w++ {
		s.slots <- w
	}
	if err := os.WriteFile(s.launcher, launcherSource, 0o644); err != nil {
		s.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	// The probe runs under generous time limits: a slow start on a busy
	// machine must not pass for a kernel that refuses namespaces.
	probe := func() RunResult {
		l := s.lim
		s.lim.Wall, s.lim.CPU = max(l.Wall, time.Minute), max(l.CPU, 30*time.Second)
		defer func() { s.lim = l }()
		return s.Run("pass\n")
	}
	// From the most isolation to the least, the first the kernel grants:
	// namespaces and a user of its own (root), the user alone (a container
	// without CAP_SYS_ADMIN, say), nothing but the limits (no root, or no
	// CAP_SETUID).
	type config struct {
		flags uintptr
		drop  bool
	}
	configs := []config{{0, false}}
	if os.Geteuid() == 0 {
		configs = []config{{syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, true}, {0, true}, {0, false}}
	}
	var refused []string
	for _, c := range configs {
		s.cloneflags, s.drop = c.flags, c.drop
		r := probe()
		if r.Status == StatusPassed {
			return s, nil
		}
		if !r.setup {
			s.Close()
			return nil, fmt.Errorf("sandbox: python3 %s cannot run a trivial program: %s", py, r)
		}
		refused = append(refused, r.Detail)
	}
	s.Close()
	return nil, fmt.Errorf("sandbox: cannot set up: %s", strings.Join(refused, "; "))
}

// Enforced describes what confines each sample on this machine.
func (s *Sandbox) Enforced() []string {
	l := s.lim
	out := []string{
		fmt.Sprintf("separate python3 process (%s) per sample in a fresh temporary directory", s.python),
		fmt.Sprintf("wall time %v (the sample's processes killed)", l.Wall),
		fmt.Sprintf("CPU time %v (RLIMIT_CPU)", l.CPU),
		fmt.Sprintf("address space %d MiB (RLIMIT_AS)", l.Memory>>20),
		fmt.Sprintf("file size %d MiB (RLIMIT_FSIZE), no core dumps", l.FileSize>>20),
	}
	if s.drop {
		// No user ids here: they differ from run to run, and this text goes
		// into reports that should not.
		out = append(out, fmt.Sprintf("runs as an unprivileged user of its own (one per parallel slot, %d) with at most %d processes (RLIMIT_NPROC)", l.Parallel, l.Procs))
	} else {
		out = append(out, "NOT enforced: process count (not root, so no unprivileged user to run as; RLIMIT_NPROC would count all of this user's processes)")
	}
	if s.cloneflags&syscall.CLONE_NEWNET != 0 {
		out = append(out, "no network: a new network namespace with no interfaces up")
	} else {
		out = append(out, "NOT enforced: network isolation (the kernel refused a new network namespace)")
	}
	if s.cloneflags&syscall.CLONE_NEWNS != 0 {
		out = append(out, "filesystem read-only except the sample's directory (mount namespace)")
	} else if s.drop {
		out = append(out, "NOT enforced: read-only filesystem (no mount namespace); the sample's user can still write world-writable places such as /tmp")
	} else {
		out = append(out, "NOT enforced: read-only filesystem (no mount namespace); the sample can write wherever this user can")
	}
	if s.cloneflags&syscall.CLONE_NEWPID != 0 {
		out = append(out, "own PID namespace: every process of a sample dies with it")
	} else {
		if s.drop {
			out = append(out, "no PID namespace: every process of the sample's user is killed when it ends")
		} else {
			out = append(out, "NOT enforced: own PID namespace; the sample's process group and any process still working in its directory are killed when it ends (a process that leaves both survives)")
		}
	}
	return out
}

// Close removes the sandbox's directory.
func (s *Sandbox) Close() { os.RemoveAll(s.base) }

// Status is how a sample's run ended.
type Status string

const (
	StatusPassed   Status = "passed"
	StatusFailed   Status = "failed"
	StatusTimedOut Status = "timed out"
)

// RunResult is one executed sample.
type RunResult struct {
	Status Status
	// Detail is the last line of the sample's stderr, or why it was
	// killed.
	Detail string
	Wall   time.Duration
	// setup: the sandbox could not be set up (the sample never ran).
	setup bool
}

// String is "passed", "timed out" or "failed: detail".
func (r RunResult) String() string {
	if r.Status == StatusFailed && r.Detail != "" {
		return string(r.Status) + ": " + r.Detail
	}
	return string(r.Status)
}

// cappedBuffer keeps the last bytes written, up to n: a sample printing in
// a loop cannot fill our memory.
type cappedBuffer struct {
	b bytes.Buffer
	n int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.b.Write(p)
	if over := c.b.Len() - c.n; over > 0 {
		c.b.Next(over)
	}
	return len(p), nil
}

type launchConfig struct {
	Dir      string `json:"dir"`
	Python   string `json:"python"`
	CPU      int64  `json:"cpu"`
	Memory   int64  `json:"memory"`
	Procs    int    `json:"procs"`
	FileSize int64  `json:"file_size"`
	UID      int    `json:"uid"`
	Mounts   bool   `json:"mounts"`
}

// Run executes program (python source) in a fresh directory and reports
// whether it exited with status 0 within the limits.
func (s *Sandbox) Run(program string) RunResult {
	w := <-s.slots
	defer func() { s.slots <- w }()
	uid := s.uidBase + w
	s.mu.Lock()
	s.seq++
	dir := filepath.Join(s.base, fmt.Sprintf("s%d", s.seq))
	s.mu.Unlock()
	defer os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return setupFailed(err.Error())
	}
	if err := os.WriteFile(filepath.Join(dir, "prog.py"), []byte(program), 0o644); err != nil {
		return setupFailed(err.Error())
	}
	cfg := launchConfig{Dir: dir, Python: s.python, CPU: int64((s.lim.CPU + time.Second - 1) / time.Second),
		Memory: s.lim.Memory, Procs: s.lim.Procs, FileSize: s.lim.FileSize, UID: -1,
		Mounts: s.cloneflags&syscall.CLONE_NEWNS != 0}
	if s.drop {
		cfg.UID = uid
		if err := os.Chown(dir, uid, uid); err != nil {
			return setupFailed(err.Error())
		}
	}
	cj, _ := json.Marshal(cfg)
	cmd := exec.Command(s.python, "-I", "-S", s.launcher, string(cj))
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LANG=C.UTF-8"}
	var stderr cappedBuffer
	stderr.n = 8 << 10
	cmd.Stdout = &cappedBuffer{n: 8 << 10}
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: s.cloneflags, Pdeathsig: syscall.SIGKILL}
	// A process the sample left behind may hold its output pipes open;
	// Wait must not wait for it.
	cmd.WaitDelay = 500 * time.Millisecond
	// The launcher reports a failure to set the sandbox up on its fd 3,
	// which the sample never has: nothing the sample prints or exits with
	// can pass for one and stop the whole evaluation.
	setupR, setupW, err := os.Pipe()
	if err != nil {
		return setupFailed(err.Error())
	}
	cmd.ExtraFiles = []*os.File{setupW}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		setupR.Close()
		setupW.Close()
		return setupFailed("start: " + err.Error())
	}
	setupW.Close()
	setupMsg := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(setupR, 4<<10))
		setupR.Close()
		setupMsg <- strings.TrimSpace(string(b))
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(s.lim.Wall)
	defer timer.Stop()
	timedOut := false
	select {
	case err = <-done:
	case <-timer.C:
		timedOut = true
		killGroup(cmd.Process.Pid)
		err = <-done
	}
	// Whatever the sample left behind in its group goes too (with a PID
	// namespace the kernel has already killed it).
	killGroup(cmd.Process.Pid)
	// The slot's user is the sample's alone: whatever still runs as it is
	// left over, and is gone before the slot's next sample starts.
	if s.drop {
		killUser(uid)
	} else if s.cloneflags&syscall.CLONE_NEWPID == 0 {
		killWorkingIn(dir)
	}
	r := RunResult{Wall: time.Since(start)}
	// Every writer of fd 3 is gone once the launcher and its child are.
	select {
	case msg := <-setupMsg:
		if msg != "" {
			return setupFailed(msg)
		}
	case <-time.After(time.Second):
	}
	switch {
	case timedOut:
		r.Status, r.Detail = StatusTimedOut, fmt.Sprintf("wall time over %v", s.lim.Wall)
	case err == nil:
		r.Status = StatusPassed
	default:
		r.Status = StatusFailed
		r.Detail = lastLine(stderr.b.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
				switch {
				case ws.Signaled():
					r.Detail = killedBy(ws.Signal(), r.Detail, s.lim.CPU)
				case ws.Exited() && ws.ExitStatus() > 128 && ws.ExitStatus() < 128+65:
					// The launcher passes on the signal that killed the
					// sample as 128 + its number.
					r.Detail = killedBy(syscall.Signal(ws.ExitStatus()-128), r.Detail, s.lim.CPU)
				}
			}
		}
		if r.Detail == "" {
			r.Detail = err.Error()
		}
	}
	return r
}

// setupFailed is a Run that could not set the sandbox up: not the sample's
// failure, and RunProblem stops on it.
func setupFailed(msg string) RunResult {
	return RunResult{Status: StatusFailed, Detail: "sandbox: " + msg, setup: true}
}

// killedBy describes a sample ended by sig, keeping its own last words
// unless the CPU limit was what ended it.
func killedBy(sig syscall.Signal, detail string, cpu time.Duration) string {
	if sig == syscall.SIGXCPU {
		return fmt.Sprintf("killed by signal %q (CPU limit %v)", sig, cpu)
	}
	if detail != "" {
		return detail
	}
	return fmt.Sprintf("killed by signal %q", sig)
}

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

// killUser kills every process of uid, a slot's own user, until none is
// left (killed processes linger until reaped, and would count against the
// next sample's process limit), giving up after two seconds.
func killUser(uid int) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join("/proc", e.Name()), &st) == nil && int(st.Uid) == uid {
				found = true
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !found || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killWorkingIn kills the processes whose working directory is dir: without
// a PID namespace, what a sample started in a new session (a daemon) and
// left in its directory. One that also changed directory escapes this.
func killWorkingIn(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && (cwd == dir || strings.HasPrefix(cwd, dir+"/") || cwd == dir+" (deleted)") {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// RunProblem executes each completion of p and counts those that pass.
func (s *Sandbox) RunProblem(p *CodeProblem, completions []string) (*CodeOutcome, error) {
	if p == nil {
		return nil, fmt.Errorf("no code problem to run completions against")
	}
	o := &CodeOutcome{Completions: completions, N: len(completions), Results: make([]string, len(completions))}
	res := make([]RunResult, len(completions))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(s.lim.Parallel, len(completions)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res[i] = s.Run(p.Program(completions[i]))
			}
		}()
	}
	for i := range completions {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, r := range res {
		if r.setup {
			return nil, fmt.Errorf("%s", r.Detail)
		}
		if r.Status == StatusPassed {
			o.Correct++
		}
		o.Results[i] = r.String()
	}
	return o, nil
}
