package main

import (
	"testing"

	"github.com/minitron-dev/minitron/distill"
)

func TestZeroConfig(t *testing.T) {
	cases := []struct {
		flag, want int
		ok         bool
		reason     string
	}{
		{-1, distill.ZeroDefault, true, "unset: the library picks (stage 1 with several ranks)"},
		{0, distill.ZeroReplicated, true, "stage 0 is the library's replicated state, not its default"},
		{1, 1, true, "stage 1 as is"},
		{2, 2, true, "stage 2 as is"},
		{3, 0, false, "no stage 3"},
		{-2, 0, false, "no negative stage"},
	}
	for _, c := range cases {
		got, err := zeroConfig(c.flag)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("zeroConfig(%d) = %d, %v; want %d, ok %v (%s)", c.flag, got, err, c.want, c.ok, c.reason)
		}
	}
}
