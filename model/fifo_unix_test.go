//go:build unix

package model

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestFIFOShardIsRefusedNotWaitedOn(t *testing.T) {
	// Opening a FIFO for reading blocks until a writer comes: a named pipe
	// in place of a shard hung the command. Without the fix this test
	// hangs (run with -timeout to see it fail).
	cfg, m := loadGoldenMem(t, "llama-tiny")
	for _, layout := range []string{"single", "sharded"} {
		t.Run(layout, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveCheckpoint(dir, cfg, m, SaveOptions{ShardBytes: map[string]int64{"single": 0, "sharded": 4096}[layout]}); err != nil {
				t.Fatal(err)
			}
			var victim string
			if layout == "single" {
				victim = filepath.Join(dir, SafetensorsFile1)
			} else {
				victim = filepath.Join(dir, ShardFileName(2, countShards(t, dir)))
			}
			os.Remove(victim)
			if err := syscall.Mkfifo(victim, 0o644); err != nil {
				t.Skip("cannot make a FIFO here:", err)
			}
			_, err := OpenCheckpoint(dir)
			if err == nil || !strings.Contains(err.Error(), victim) || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("got %v; want %s named as not a regular file", err, victim)
			}
		})
	}
}

func countShards(t *testing.T, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "model-*-of-*.safetensors"))
	if len(m) < 2 {
		t.Fatalf("want a sharded checkpoint, got %d shards", len(m))
	}
	return len(m)
}

func TestFIFOCheckpointJSONIsRefused(t *testing.T) {
	// config.json, the shard index and generation_config.json are read
	// whole: a FIFO in their place blocked the same way as a shard.
	cfg, m := loadGoldenMem(t, "llama-tiny")
	for _, name := range []string{ConfigFile, IndexFile, "generation_config.json"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			shard := int64(0)
			if name == IndexFile {
				shard = 4096
			}
			if err := SaveCheckpoint(dir, cfg, m, SaveOptions{ShardBytes: shard}); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, name)
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skip("cannot make a FIFO here:", err)
			}
			_, err := Load(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("got %v; want %s named as not a regular file", err, p)
			}
		})
	}
}
