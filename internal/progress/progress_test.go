package progress

import (
	"io"
	"strings"
	"testing"
	"time"
)

// Off a terminal, progress is a plain line when started, then at most one
// per interval, then one when finished, each with the count, the rate and
// the description.
func TestPlainLines(t *testing.T) {
	var out strings.Builder
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	p := newPlain(&out, 100, "train", 30*time.Second, now)
	b := &Bar{plain: p}
	b.Resume(10) // a resumed run's 10 done steps: no rate from them
	b.plain.printLocked(true)
	for i := 0; i < 40; i++ {
		clock = clock.Add(time.Second)
		b.Describe("loss 2.5")
		b.Add(1)
	}
	b.Finish()
	b.Finish()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, c := range []struct {
		i      int
		want   string
		reason string
	}{
		{0, "train: 10/100 (10%), 0s elapsed", "a line when started, with the resumed offset and no rate yet"},
		{1, "train: 40/100 (40%), 1/s, eta 1m0s, 30s elapsed; loss 2.5", "the next after the interval: rate of the steps made here"},
		{2, "train: 50/100 (50%), 1/s, eta 50s, 40s elapsed; loss 2.5", "the last when finished, once"},
	} {
		if c.i >= len(lines) || lines[c.i] != c.want {
			t.Errorf("%s: line %d = %q, want %q (all: %q)", c.reason, c.i, at(lines, c.i), c.want, lines)
		}
	}
	if len(lines) != 3 {
		t.Errorf("%d lines, want 3: %q", len(lines), lines)
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// Off a terminal (as under go test), New shows progress as plain lines
// instead of nothing: a batch job's log says how far it got.
func TestNewOffTerminalPrints(t *testing.T) {
	if Enabled() {
		t.Skip("stderr is a terminal")
	}
	var out strings.Builder
	defer func(w io.Writer) { plainOut = w }(plainOut)
	plainOut = &out
	b := New(3, "tokenising")
	b.Add(1)
	b.Add(2)
	b.Finish()
	if got := out.String(); !strings.HasPrefix(got, "tokenising: 1/3 (33%)") || !strings.Contains(got, "\ntokenising: 3/3 (100%)") {
		t.Errorf("progress off a terminal printed %q, want a line at the first report and one when finished", got)
	}
}
