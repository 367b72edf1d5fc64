package data_test

import (
	"fmt"

	"github.com/minitron-dev/minitron/data"
)

// A sampler over documents that end in EOD (0 here): samples of SeqLen+1
// tokens run across document boundaries, each starting on the previous
// sample's last token.
func ExampleNewGPTSampler() {
	docs := data.MemorySource{{1, 2, 3, 0}, {4, 5, 0}, {6, 7, 8, 9, 0}}
	s, err := data.NewGPTSampler(docs, data.SamplerOptions{SeqLen: 4, NoShuffle: true})
	if err != nil {
		panic(err)
	}
	batch, _ := s.NextBatch(3)
	fmt.Println(batch)
	st := s.State()
	fmt.Println(st.Epoch, st.Index)
	// Output:
	// [[1 2 3 0 4] [4 5 0 6 7] [1 2 3 0 4]]
	// 1 1
}
