package model

import (
	"fmt"
	"math"
)

// ExplainNonFinite is the error for a non-finite result (what: "nll",
// "logits"): the first weight tensor holding NaN or ±Inf, with the
// checkpoint directory, when there is one, else overflowing activations.
// It reads the weights one tensor at a time, so it is meant for the error
// path only; a NaN result would otherwise print as a number and exit 0.
func (m *Model) ExplainNonFinite(what string) error {
	where := "the weights"
	if d, ok := m.src.(interface{ Dir() string }); ok {
		where = "checkpoint " + d.Dir()
	}
	var buf []float32
	for _, t := range m.arch.Tensors {
		n := t.NumElements()
		if cap(buf) < n {
			buf = make([]float32, n)
		}
		b := buf[:n]
		if err := m.src.ReadF32(t.Name, b); err != nil {
			return fmt.Errorf("%s is not finite, and reading %s failed: %w", what, t.Name, err)
		}
		if !m.resident {
			releaseMapped(m.src, t.Name)
		}
		for i, v := range b {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%s is not finite: %s: tensor %q holds %v at element %d", what, where, t.Name, v, i)
			}
		}
	}
	return fmt.Errorf("%s is not finite although every weight of %s is (the activations overflow float32)", what, where)
}

// finite32 reports whether every value is a finite number.
func finite32(v []float32) bool {
	for _, x := range v {
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}
