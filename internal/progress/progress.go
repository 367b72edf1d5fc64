// Package progress draws progress bars on stderr, only when stderr is a
// terminal, so logs and CI output stay clean. It is a leaf helper of the
// CLI: libraries report progress through callbacks (a Progress func(done,
// total int64) option) and cmd/minitron turns those into bars.
package progress

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar is a progress bar; the zero-cost no-op Bar is used when stderr is not
// a terminal.
type Bar struct{ pb *progressbar.ProgressBar }

// Enabled reports whether progress bars are drawn (stderr is a terminal).
func Enabled() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// New starts a bar of total steps (-1 for unknown) with a description.
func New(total int64, desc string) *Bar {
	if !Enabled() {
		return &Bar{}
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
}

// Describe replaces the bar's description (e.g. with the current loss).
func (b *Bar) Describe(s string) {
	if b.pb != nil {
		b.pb.Describe(s)
	}
}

// Finish completes and clears the bar.
func (b *Bar) Finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
}
