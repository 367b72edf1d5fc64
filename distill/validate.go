package distill

import (
	"fmt"
	"math"
)

// validateNumbers refuses numeric settings that would otherwise run and
// give a silently wrong result: a negative or non-finite learning rate
// trains away from the data (or not at all), a MinLR above LR turns the
// cosine decay into a rise, and negative checkpoint or logging intervals
// behave like "never" or "every |n|" instead of failing. Zero keeps its
// documented meaning (LR, MinLR: the default; SaveEvery, ValEvery: only at
// the end; KeepLast: keep all; LogEvery: every step), so this runs before
// defaults fills them in. Errors name the options.
func (c *Config) validateNumbers() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"LR", c.LR}, {"MinLR", c.MinLR}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s must be a positive learning rate, got %v", f.name, f.v)
		}
	}
	if c.LR > 0 && c.MinLR > c.LR {
		return fmt.Errorf("MinLR %v is above LR %v: the cosine schedule decays from LR to MinLR", c.MinLR, c.LR)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"SaveEvery", c.SaveEvery}, {"KeepLast", c.KeepLast}, {"ValEvery", c.ValEvery}, {"LogEvery", c.LogEvery}} {
		if f.v < 0 {
			return fmt.Errorf("%s must be ≥ 0, got %d", f.name, f.v)
		}
	}
	return nil
}
