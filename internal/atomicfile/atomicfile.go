// Package atomicfile writes files so that readers see either the old file
// or the whole new one, never a partial write: every output of minitron
// (checkpoints, datasets, manifests, reports) goes through it.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to a temporary file beside path, syncs it, runs
// before (if not nil; e.g. to move a companion file into place first) and
// renames the temporary file to path. On error the temporary file is removed.
func WriteFile(path string, data []byte, before func() error) error {
	st, err := Stage(path, data)
	if err != nil {
		return err
	}
	if before != nil {
		if err := before(); err != nil {
			os.Remove(st.Tmp)
			return err
		}
	}
	if err := os.Rename(st.Tmp, path); err != nil {
		os.Remove(st.Tmp)
		return err
	}
	return nil
}

// TempDir makes a directory beside out, named ".BASE.TAG…", to build an
// output in before renaming it to out, after removing what a killed run on
// the same output left there (".BASE.TAG…", and the ".".BASE.TAG…
// temporaries of writers that worked inside it). Unlike os.MkdirTemp's, it
// is readable by others (0755), as the output will be.
func TempDir(out, tag string) (string, error) {
	clean := filepath.Clean(out)
	parent, prefix := filepath.Dir(clean), "."+filepath.Base(clean)+"."+tag
	for _, pat := range []string{prefix + "*", "." + prefix + "*"} {
		if stale, err := filepath.Glob(filepath.Join(parent, pat)); err == nil {
			for _, d := range stale {
				os.RemoveAll(d)
			}
		}
	}
	dir, err := os.MkdirTemp(parent, prefix+"*")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// Prepare makes sure a later WriteFile(path) can succeed: it creates path's
// parent directories and checks that a file can be created there and that
// path is not a directory. Commands call it before long work, so that a
// typo in an output path fails at once instead of after the work.
func Prepare(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the directory of %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
