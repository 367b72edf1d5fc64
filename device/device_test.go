package device

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   Kind
		err    string
		reason string
	}{
		{"", CPU, "", "empty means the CPU"},
		{"cpu", CPU, "", "plain name"},
		{"CUDA", CUDA, "", "names are case-insensitive"},
		{" cuda ", CUDA, "", "surrounding space is ignored"},
		{"gpu", CPU, `device "gpu": want cpu or cuda`, "unknown names are refused with the choices"},
	} {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error %v, want %q (%s)", tc.in, err, tc.err, tc.reason)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q (%s)", tc.in, got, err, tc.want, tc.reason)
		}
	}
	if Kind("").String() != "cpu" {
		t.Errorf("zero Kind prints %q", Kind("").String())
	}
}
