// Package progress shows long work's progress on stderr: a bar when stderr
// is a terminal, else (Slurm, nohup, CI logs) a plain line at a steady
// interval, so a batch job's log says how far it got. It is a leaf helper
// of the CLI: libraries report progress through callbacks (a Progress
// func(done, total int64) option) and cmd/minitron turns those into bars.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar is a progress bar on a terminal, or a plain line every Interval
// elsewhere.
type Bar struct {
	pb    *progressbar.ProgressBar
	plain *plain
}

// Enabled reports whether progress bars are drawn (stderr is a terminal).
func Enabled() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// Interval is how often a plain progress line is printed when stderr is not
// a terminal; MINITRON_PROGRESS_INTERVAL (a Go duration, e.g. 10s) sets it.
var Interval = 30 * time.Second

func init() {
	if d, err := time.ParseDuration(os.Getenv("MINITRON_PROGRESS_INTERVAL")); err == nil && d > 0 {
		Interval = d
	}
}

// plainOut is where plain lines go (stderr; tests replace it).
var plainOut io.Writer = os.Stderr

// New starts a bar of total steps (-1 for unknown) with a description.
func New(total int64, desc string) *Bar {
	if !Enabled() {
		return &Bar{plain: newPlain(plainOut, total, desc, Interval, time.Now)}
	}
	return &Bar{pb: newBar(total, desc, os.Stderr)}
}

func newBar(total int64, desc string, w io.Writer) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
}

// Add advances the bar by n.
func (b *Bar) Add(n int) {
	if b.pb != nil {
		_ = b.pb.Add(n)
	}
	if b.plain != nil {
		b.plain.add(int64(n))
	}
}

// Resume sets n steps as done before this process started (a resumed
// run's): they count towards the total but not the rate.
func (b *Bar) Resume(n int) {
	if b.pb != nil {
		_ = b.pb.Add(n)
	}
	if p := b.plain; p != nil {
		p.mu.Lock()
		p.done += int64(n)
		p.base += int64(n)
		p.mu.Unlock()
	}
}

// Describe replaces the bar's description (e.g. with the current loss).
func (b *Bar) Describe(s string) {
	if b.pb != nil {
		b.pb.Describe(s)
	}
	if b.plain != nil {
		b.plain.describe(s)
	}
}

// Finish completes and clears the bar (a plain one prints its last line).
func (b *Bar) Finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
	if b.plain != nil {
		b.plain.finish()
	}
}

// plain prints "desc: done/total (pct), rate/s, eta …[, description]" at
// the first report, then at most every interval, and when finished.
type plain struct {
	mu          sync.Mutex
	w           io.Writer
	name, note  string
	total, done int64
	base        int64 // done at the start (a resumed run's steps)
	start, last time.Time
	every       time.Duration
	now         func() time.Time
	finished    bool
}

func newPlain(w io.Writer, total int64, name string, every time.Duration, now func() time.Time) *plain {
	t := now()
	return &plain{w: w, name: name, total: total, every: every, now: now, start: t, last: t.Add(-every)}
}

func (p *plain) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.printLocked(false)
}

func (p *plain) describe(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.note = s
}

func (p *plain) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished {
		p.printLocked(true)
		p.finished = true
	}
}

func (p *plain) printLocked(force bool) {
	t := p.now()
	if !force && t.Sub(p.last) < p.every {
		return
	}
	p.last = t
	line := fmt.Sprintf("%s: %d", p.name, p.done)
	el := t.Sub(p.start)
	if p.total > 0 {
		line += fmt.Sprintf("/%d (%.0f%%)", p.total, 100*float64(p.done)/float64(p.total))
	}
	if made := p.done - p.base; made > 0 && el > 0 {
		rate := float64(made) / el.Seconds()
		line += fmt.Sprintf(", %.3g/s", rate)
		if p.total > 0 && p.done < p.total {
			eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
			line += fmt.Sprintf(", eta %s", eta.Round(time.Second))
		}
	}
	line += fmt.Sprintf(", %s elapsed", el.Round(time.Second))
	if p.note != "" {
		line += "; " + p.note
	}
	fmt.Fprintln(p.w, line)
}
