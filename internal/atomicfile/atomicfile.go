// Package atomicfile writes files so that readers see either the old file
// or the whole new one, never a partial write: every output of minitron
// (checkpoints, datasets, manifests, reports) goes through it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to a temporary file beside path, syncs it, runs
// before (if not nil; e.g. to move a companion file into place first) and
// renames the temporary file to path. On error the temporary file is removed.
func WriteFile(path string, data []byte, before func() error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o644)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && before != nil {
		err = before()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
