package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, tc := range []struct {
		data    string
		before  func() error
		want    string
		wantErr bool
		reason  string
	}{
		{"one", nil, "one", false, "a new file is written"},
		{"two", nil, "two", false, "an existing file is replaced"},
		{"three", func() error { return errors.New("boom") }, "two", true, "a failing before hook leaves the old file"},
	} {
		err := WriteFile(p, []byte(tc.data), tc.before)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%s: err = %v", tc.reason, err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != tc.want {
			t.Fatalf("%s: file holds %q, want %q", tc.reason, b, tc.want)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}
