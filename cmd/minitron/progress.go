package main

import "github.com/minitron-dev/minitron/internal/progress"

// progressBar turns a library's progress reports (the Progress func(done,
// total int64) option of data, eval and importance) into a bar on stderr,
// drawn only when stderr is a terminal: the libraries report, the CLI
// draws. The bar starts at the first report, sized by its total.
type progressBar struct {
	desc string
	bar  *progress.Bar
	done int64
}

func newProgressBar(desc string) *progressBar { return &progressBar{desc: desc} }

// Update is the callback to hand the library.
func (p *progressBar) Update(done, total int64) {
	if p.bar == nil {
		p.bar = progress.New(total, p.desc)
	}
	if d := done - p.done; d > 0 {
		p.bar.Add(int(d))
	}
	p.done = done
}

// Finish clears the bar (nothing when no report came).
func (p *progressBar) Finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
