package prune

import (
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/importance"
	"github.com/minitron-dev/minitron/model"
)

func TestSelectPlanRefusesBlockOutsideModel(t *testing.T) {
	// Scores made in memory bypass importance.Load's validation; a block
	// of 2 starting at layer 3 of 4 would "drop" layers 3 and 4 and keep
	// the rest silently.
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","hidden_size":8,"intermediate_size":6,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10}`))
	if err != nil {
		t.Fatal(err)
	}
	sc := importance.Random(cfg, 1)
	sc.Depth.Blocks = []importance.BlockDrop{{K: 2, Start: 3, Metric: "loss"}}
	target, err := Target{Layers: 2, Hidden: 8, Heads: 4, KVHeads: 2, FFN: 6}.Resolve(cfg, PerGroup)
	if err != nil {
		t.Fatal(err)
	}
	_, err = SelectPlan(cfg, target, sc, SelectOptions{LayerMetric: LayerBlock})
	if err == nil || !strings.Contains(err.Error(), "starting at layer 3 is outside the model's 4 layers") {
		t.Fatalf("got %v; want the block named", err)
	}
}
