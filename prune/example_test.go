package prune_test

import (
	"fmt"

	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/prune"
)

// The papers' default recipe for a parameter budget on Nemotron-4 15B:
// keep layers and heads, cut the MLP to 2/3, then the embedding.
func ExampleForParams() {
	teacher, _ := model.LoadConfig("testdata/nemotron-4-15b/config.json")
	t, _ := prune.ForParams(teacher, 8.27e9, 0)
	fmt.Println(t, model.FormatParams(t.Params(teacher)))
	// Output: layers 32, hidden 4096, heads 48, kv-heads 8, ffn 16384 8.27B
}

func ExamplePresetTarget() {
	teacher, _ := model.LoadConfig("testdata/nemotron-4-15b/config.json")
	for _, name := range prune.PresetNames() {
		t, _ := prune.PresetTarget(name, teacher)
		fmt.Println(name, t, model.FormatParams(t.Params(teacher)))
	}
	// Output:
	// minitron-8b layers 32, hidden 4096, heads 48, kv-heads 8, ffn 16384 8.27B
	// minitron-4b layers 32, hidden 3072, heads 24, kv-heads 8, ffn 9216 4.19B
}
