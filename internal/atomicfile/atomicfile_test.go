package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

func TestPrepare(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		wantErr string // empty: success
		reason  string
	}{
		{filepath.Join(root, "a", "b", "report.md"), "", "missing parent directories are created"},
		{filepath.Join(root, "report.md"), "", "an existing parent is fine"},
		{file, "", "an existing file will be replaced, as WriteFile does"},
		{root, "is a directory", "a directory cannot become a file"},
		{filepath.Join(file, "report.md"), "not a directory", "a parent that is a regular file cannot hold the file"},
	} {
		err := Prepare(tc.path)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.reason, err)
			} else if st, err := os.Stat(filepath.Dir(tc.path)); err != nil || !st.IsDir() {
				t.Errorf("%s: parent not created (%v)", tc.reason, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: error %v, want one naming %s and containing %q", tc.reason, err, tc.path, tc.wantErr)
		}
	}
	// The write probe leaves nothing behind.
	ents, _ := os.ReadDir(filepath.Join(root, "a", "b"))
	if len(ents) != 0 {
		t.Errorf("Prepare left files: %v", ents)
	}
}
