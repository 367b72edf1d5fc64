package main

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/importance"
)

// importance --shard I/N on each part, then importance merge, writes the
// scores of one run over all the samples (to float64 summation order).
func TestImportanceShardsAndMergeCLI(t *testing.T) {
	dir, prefix := pruneFixture(t)
	root := t.TempDir()
	args := func(out string, extra ...string) []string {
		return append([]string{"importance", "--model", dir, "--data", prefix, "--samples", "5", "--seq-len", "12",
			"--batch", "2", "--loss-samples", "3", "--out", out}, extra...)
	}
	whole := filepath.Join(root, "whole.json")
	if _, err := runCLI(t, args(whole)...); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, s := range []string{"1/2", "0/2"} {
		p := filepath.Join(root, "part-"+s[:1]+".json")
		got, err := runCLI(t, args(p, "--shard", s)...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "scored shard "+s) {
			t.Errorf("--shard %s printed %q", s, got)
		}
		parts = append(parts, p)
	}
	merged := filepath.Join(root, "merged.json")
	got, err := runCLI(t, append([]string{"importance", "merge", "--out", merged}, parts...)...)
	if err != nil || !strings.Contains(got, "merged 2 shards (5 samples") {
		t.Fatalf("merge: %v %q", err, got)
	}
	a, err := importance.Load(merged)
	if err != nil {
		t.Fatal(err)
	}
	b, err := importance.Load(whole)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range b.Channels {
		if math.Abs(a.Channels[i]-v) > 1e-12*math.Abs(v) {
			t.Fatalf("channel %d: merged %g, single run %g", i, a.Channels[i], v)
		}
	}
	if math.Abs(a.Depth.BaseLoss-b.Depth.BaseLoss) > 1e-12*b.Depth.BaseLoss {
		t.Fatalf("base loss: merged %g, single run %g", a.Depth.BaseLoss, b.Depth.BaseLoss)
	}
	for _, c := range []struct {
		args   []string
		want   string
		reason string
	}{
		{args(filepath.Join(root, "x.json"), "--shard", "2/2"), "--shard", "shard index outside its count"},
		{args(filepath.Join(root, "x.json"), "--shard", "1"), "--shard", "no count"},
		{[]string{"importance", "merge", "--out", filepath.Join(root, "y.json"), parts[0]}, "2 shards", "a shard missing"},
		{[]string{"importance", "merge", "--out", merged, parts[0], parts[1]}, "exists", "an existing --out"},
	} {
		if _, err := runCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.reason, err, c.want)
		}
	}
}
