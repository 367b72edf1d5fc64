//go:build minitron_cuda || minitron_cudaemu

package gpu_test

import (
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// CopyRow on a freed cache that still held positions is an error naming
// the freed cache (it sliced the freed buffer and panicked), as
// InferCached's.
func TestKVCacheCopyRowAfterFree(t *testing.T) {
	const B, Seq = 2, 4
	_, gm, _ := cachedPair(t, inferCase{fam: model.Llama}, B, Seq, Seq)
	kc, err := gm.NewKVCache(B, 4)
	must(t, err)
	must(t, gm.SetInputs([][]int32{{1, 2}}, nil))
	must(t, gm.InferCached(kc, nil))
	kc.Free()
	if err := kc.CopyRow(1, 0); err == nil || !strings.Contains(err.Error(), "freed") {
		t.Errorf("CopyRow after Free: error %v, want one saying the cache was freed", err)
	}
}
