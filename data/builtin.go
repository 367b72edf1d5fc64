package data

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Built-in corpora: real text that ships with every Go installation, so
// training and tests run anywhere without a download.
const (
	// BuiltinGoSrc is every *.go file under $(go env GOROOT)/src.
	BuiltinGoSrc = "go-src"
	// BuiltinOpticks is $(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt.
	BuiltinOpticks = "opticks"
)

// BuiltinNames lists the built-in corpora.
func BuiltinNames() []string { return []string{BuiltinGoSrc, BuiltinOpticks} }

var goroot struct {
	once sync.Once
	dir  string
	err  error
}

// GOROOT finds the Go installation: runtime.GOROOT() when the binary knows it
// (not with -trimpath), else `go env GOROOT`.
func GOROOT() (string, error) {
	goroot.once.Do(func() {
		if d := runtime.GOROOT(); d != "" {
			if st, err := os.Stat(filepath.Join(d, "src")); err == nil && st.IsDir() {
				goroot.dir = d
				return
			}
		}
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			goroot.err = fmt.Errorf("cannot find GOROOT (runtime.GOROOT is empty and `go env GOROOT` failed: %v); install Go or give the input files", err)
			return
		}
		goroot.dir = strings.TrimSpace(string(out))
		if goroot.dir == "" {
			goroot.err = fmt.Errorf("cannot find GOROOT: `go env GOROOT` printed nothing")
		}
	})
	return goroot.dir, goroot.err
}

// builtinRoot returns the directory the corpus's files are relative to.
func builtinRoot(name string) (string, error) {
	root, err := GOROOT()
	if err != nil {
		return "", err
	}
	switch name {
	case BuiltinGoSrc:
		return filepath.Join(root, "src"), nil
	case BuiltinOpticks:
		return filepath.Join(root, "src", "testdata"), nil
	}
	return "", fmt.Errorf("unknown built-in corpus %q (have %s)", name, strings.Join(BuiltinNames(), ", "))
}

// BuiltinFiles returns the sorted absolute paths of a built-in corpus's files.
func BuiltinFiles(name string) ([]string, error) {
	root, err := builtinRoot(name)
	if err != nil {
		return nil, err
	}
	if name == BuiltinOpticks {
		p := filepath.Join(root, "Isaac.Newton-Opticks.txt")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("built-in corpus %s: %w", name, err)
		}
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("built-in corpus %s: %w", name, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("built-in corpus %s: no .go files under %s", name, root)
	}
	sort.Strings(files)
	return files, nil
}
