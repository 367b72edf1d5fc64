package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Staged is a complete, synced file under a temporary name beside Path,
// waiting for Publish to rename it into place.
type Staged struct {
	Tmp, Path string
}

// Stage writes data to a synced temporary file beside path (nothing is
// visible at path yet).
func Stage(path string, data []byte) (Staged, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return Staged{}, err
	}
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
	if err != nil {
		os.Remove(f.Name())
		return Staged{}, err
	}
	return Staged{Tmp: f.Name(), Path: path}, nil
}

// Publish renames a group of staged files into place, in order, so that a
// group of outputs that only make sense together (a dataset's splits and
// their manifest) appears whole or not at all: the writing, where a full
// disk fails, happened while staging; if a rename still fails, the files
// of the group already renamed are removed again and the remaining
// temporaries deleted. (A file the group replaced is not brought back.)
func Publish(group []Staged) error {
	for i, s := range group {
		if err := os.Rename(s.Tmp, s.Path); err != nil {
			for _, done := range group[:i] {
				os.Remove(done.Path)
			}
			Discard(group[i:])
			return fmt.Errorf("publishing %s: %w", s.Path, err)
		}
	}
	syncDir(group)
	return nil
}

// Discard removes the temporaries of staged files not yet published.
func Discard(group []Staged) {
	for _, s := range group {
		os.Remove(s.Tmp)
	}
}

// syncDir makes the renames durable where the platform allows it; the
// files themselves were synced while staging.
func syncDir(group []Staged) {
	seen := map[string]bool{}
	for _, s := range group {
		d := filepath.Dir(s.Path)
		if seen[d] {
			continue
		}
		seen[d] = true
		if f, err := os.Open(d); err == nil {
			f.Sync()
			f.Close()
		}
	}
}
