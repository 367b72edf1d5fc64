package eval

import (
	"reflect"
	"testing"
)

func TestRollingWindows(t *testing.T) {
	x := make([]int, 34)
	for i := range x {
		x[i] = i
	}
	// lm-eval's own test case (get_rolling_token_windows v1, max 10,
	// context_len 1), after make_disjoint_window.
	want := []Window{
		{[]int{-100}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{[]int{9}, []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}},
		{[]int{19}, []int{20, 21, 22, 23, 24, 25, 26, 27, 28, 29}},
		{[]int{23, 24, 25, 26, 27, 28, 29}, []int{30, 31, 32, 33}},
	}
	got := RollingWindows(x, -100, 10, 1)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("disjoint windows\n got %v\nwant %v", got, want)
	}
	cases := []struct {
		reason             string
		n, maxLen, ctxLen  int
		wantWindows, maxIn int
	}{
		{"stride 4 in a 10 window: 10 then 4,4,4,...", 34, 10, 7, 7, 10},
		{"shorter than one window", 5, 10, 1, 1, 5},
		{"exactly one window", 10, 10, 1, 1, 10},
		{"window of 1", 3, 1, 1, 3, 1},
	}
	for _, c := range cases {
		ws := RollingWindows(x[:c.n], -1, c.maxLen, c.ctxLen)
		if len(ws) != c.wantWindows {
			t.Errorf("%s: %d windows, want %d", c.reason, len(ws), c.wantWindows)
		}
		var pred []int
		for _, w := range ws {
			if l := len(w.Context) + len(w.Pred) - 1; l > c.maxIn {
				t.Errorf("%s: window input %d > %d", c.reason, l, c.maxIn)
			}
			// The context must be exactly the tokens right before Pred.
			start := len(pred)
			for i, tk := range w.Context {
				pos := start - len(w.Context) + i
				if pos < 0 && tk != -1 || pos >= 0 && tk != x[pos] {
					t.Errorf("%s: context %v does not precede pred %v", c.reason, w.Context, w.Pred)
					break
				}
			}
			pred = append(pred, w.Pred...)
		}
		if !reflect.DeepEqual(pred, x[:c.n]) {
			t.Errorf("%s: every token predicted once: %v", c.reason, pred)
		}
	}
}
