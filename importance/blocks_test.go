package importance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func TestLoadRejectsBadBlocks(t *testing.T) {
	// Scores of a 4-layer model. A block outside its layers made prune drop
	// layers that do not exist (and keep the wrong ones) with exit 0.
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","hidden_size":8,"intermediate_size":6,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		blocks []BlockDrop
		want   string
		reason string
	}{
		{"start past the end", []BlockDrop{{K: 1, Start: 4, Metric: "loss"}}, "blocks[0]: layers [4,5) are outside the 4 layers", "no layer 4"},
		{"block overruns", []BlockDrop{{K: 1, Start: 0, Metric: "loss"}, {K: 2, Start: 3, Metric: "loss"}}, "blocks[1]: layers [3,5) are outside the 4 layers", "the second block runs past the last layer"},
		{"negative start", []BlockDrop{{K: 1, Start: -1, Metric: "bi"}}, "blocks[0]: layers [-1,0) are outside", "negative layer"},
		{"zero k", []BlockDrop{{K: 0, Start: 0, Metric: "loss"}}, "blocks[0]: k 0 must be between 1 and 3", "an empty block drops nothing"},
		{"every layer", []BlockDrop{{K: 4, Start: 0, Metric: "loss"}}, "blocks[0]: k 4 must be between 1 and 3", "a model with no layers left"},
		{"unknown metric", []BlockDrop{{K: 1, Start: 0, Metric: "ppl"}}, `blocks[0]: metric "ppl"`, "prune looks blocks up by metric"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Random(cfg, 1)
			s.Depth.Blocks = c.blocks
			b, _ := json.Marshal(s)
			p := filepath.Join(t.TempDir(), "scores.json")
			os.WriteFile(p, b, 0o644)
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v; want the file and %q (%s)", err, c.want, c.reason)
			}
		})
	}
	s := Random(cfg, 1)
	s.Depth.Blocks = []BlockDrop{{K: 3, Start: 1, Metric: "loss", Value: 3.5}, {K: 1, Start: 0, Metric: "bi", Value: 0.1}}
	b, _ := json.Marshal(s)
	if _, err := Parse(b); err != nil {
		t.Errorf("valid blocks refused: %v", err)
	}
}

func FuzzParseScoresBlocks(f *testing.F) {
	good, _ := json.Marshal(tinyScores())
	f.Add(good)
	f.Add([]byte(`{"format":"minitron-importance/1","shape":{"layers":2,"hidden":1,"heads":1,"kv_heads":1,"ffn":1},"channels":[1],
		"layers":[{"heads":[1],"groups":[1],"neurons":[1]},{"heads":[1],"groups":[1],"neurons":[1]}],
		"layer_importance":{"blocks":[{"k":1,"start":5,"metric":"loss","value":1}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil || s.Depth == nil {
			return
		}
		// prune drops Start…Start+K−1 as written: every accepted block
		// must lie inside the model and leave a layer.
		for i, bl := range s.Depth.Blocks {
			if bl.K < 1 || bl.Start < 0 || bl.Start+bl.K > s.Shape.Layers || bl.K >= s.Shape.Layers {
				t.Fatalf("accepted blocks[%d] = %+v for %d layers", i, bl, s.Shape.Layers)
			}
		}
	})
}
