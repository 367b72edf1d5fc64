package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// checkpointFileNames are the files of a Hugging Face checkpoint directory
// besides its safetensors: config, generation settings, shard index and
// tokenizer.
var checkpointFileNames = map[string]bool{
	ConfigFile: true, "generation_config.json": true, IndexFile: true,
	"tokenizer.json": true, "tokenizer_config.json": true, "tokenizer.model": true,
	"special_tokens_map.json": true, "vocab.json": true, "merges.txt": true,
}

// IsCheckpointFile reports whether path names one of checkpoint directory
// dir's own files (config, weights, index, tokenizer), whether or not it
// exists yet: a command's output written there would replace part of the
// checkpoint. Directories are compared as files, so symlinks and relative
// spellings of dir are recognised.
func IsCheckpointFile(dir, path string) bool {
	base := filepath.Base(path)
	if !checkpointFileNames[base] && !strings.HasSuffix(base, ".safetensors") {
		return false
	}
	a, err1 := os.Stat(dir)
	b, err2 := os.Stat(filepath.Dir(path))
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// readRegular is os.ReadFile for a checkpoint's JSON files that refuses
// anything but a regular file first: reading a FIFO would wait for a
// writer forever. (Errors of a missing file are os.Stat's, so
// errors.Is(err, os.ErrNotExist) holds.)
func readRegular(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return os.ReadFile(path)
}
