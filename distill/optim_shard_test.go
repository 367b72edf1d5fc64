package distill

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

var shardTestTensors = []model.TensorInfo{{Name: "a", Shape: []int{2, 3}}, {Name: "b", Shape: []int{4}}}

func TestShardIndexRefusals(t *testing.T) {
	good := `{"format":"minitron-optimizer-shards/1","elements":10,"adam_step":3,
		"tensors":[{"name":"a","shape":[2,3],"offset":0},{"name":"b","shape":[4],"offset":6}],
		"shards":[{"file":"optimizer-00000-of-00002.bin","lo":0,"hi":5},{"file":"optimizer-00001-of-00002.bin","lo":5,"hi":10}]}`
	if _, err := parseShardIndex([]byte(good), shardTestTensors, 10); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		from, to, want, reason string
	}{
		{`"lo":5,"hi":10`, `"lo":6,"hi":10`, "does not continue", "a gap between shards"},
		{`"lo":5,"hi":10`, `"lo":5,"hi":9`, "cover [0,9)", "the shards end short"},
		{`"name":"b"`, `"name":"c"`, "tensor 1", "another tensor"},
		{`"elements":10`, `"elements":11`, "11 elements", "another size"},
		{`optimizer-00001-of-00002.bin`, `../x.bin`, "does not continue", "a file outside the checkpoint"},
		{`shards/1`, `shards/9`, "format", "an unknown format"},
	}
	for _, c := range cases {
		_, err := parseShardIndex([]byte(strings.Replace(good, c.from, c.to, 1)), shardTestTensors, 10)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.reason, err, c.want)
		}
	}
}

// A shard file cut short or corrupted is refused before any state is read.
func TestShardFileChecked(t *testing.T) {
	dir := t.TempDir()
	if err := writeShardIndex(dir, shardTestTensors, 1, 3, false, false); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, shardName(0, 1))
	raw := make([]byte, shardHeader+8*10+4)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openOptimState(dir, shardTestTensors, 10, 0); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("a zeroed shard: %v, want a checksum error", err)
	}
	os.WriteFile(p, raw[:20], 0o644)
	if _, err := openOptimState(dir, shardTestTensors, 10, 0); err == nil || !strings.Contains(err.Error(), "bytes, want") {
		t.Fatalf("a truncated shard: %v, want a size error", err)
	}
}

// The index is read from checkpoints that may come from elsewhere: bad
// input is an error, never a panic.
func FuzzParseShardIndex(f *testing.F) {
	f.Add([]byte(`{"format":"minitron-optimizer-shards/1","elements":10,"tensors":[{"name":"a","shape":[2,3],"offset":0},{"name":"b","shape":[4],"offset":6}],"shards":[{"file":"x","lo":0,"hi":10}]}`))
	f.Add([]byte(`{"format":"minitron-optimizer-shards/1","elements":10,"tensors":[],"shards":[{"file":"x","lo":-5,"hi":10}],"aux":"../y"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseShardIndex(b, shardTestTensors, 10)
	})
}
