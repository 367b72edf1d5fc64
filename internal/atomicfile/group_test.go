package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublishAllOrNone(t *testing.T) {
	cases := []struct {
		name    string
		block   int // index of the file whose path is a non-empty directory (-1: none)
		wantErr bool
		reason  string
	}{
		{"all publish", -1, false, "every rename succeeds"},
		{"first fails", 0, true, "nothing was renamed yet: only temporaries to remove"},
		{"last fails", 2, true, "the two renamed files must be removed again"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var group []Staged
			for i, n := range []string{"a", "b", "c"} {
				p := filepath.Join(dir, n)
				if i == c.block {
					os.Mkdir(p, 0o755)
					os.WriteFile(filepath.Join(p, "x"), nil, 0o644)
				}
				s, err := Stage(p, []byte(n))
				if err != nil {
					t.Fatal(err)
				}
				group = append(group, s)
			}
			err := Publish(group)
			if (err != nil) != c.wantErr {
				t.Fatalf("Publish: %v, want error %v (%s)", err, c.wantErr, c.reason)
			}
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			want := "a,b,c"
			if c.wantErr {
				want = []string{"a", "b", "c"}[c.block] // only the blocking directory
			}
			if got := strings.Join(names, ","); got != want {
				t.Errorf("directory holds %s, want %s (%s)", got, want, c.reason)
			}
		})
	}
}
