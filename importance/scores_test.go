package importance

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

func tinyScores() *Scores {
	cfg, _ := model.ParseConfig([]byte(`{"model_type":"llama","hidden_size":8,"intermediate_size":6,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":10}`))
	return Random(cfg, 1)
}

func TestScoresRoundTrip(t *testing.T) {
	s := tinyScores()
	p := filepath.Join(t.TempDir(), "s.json")
	if err := s.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Layers[1].Neurons[5] != s.Layers[1].Neurons[5] || got.Depth.BI[1] != s.Depth.BI[1] {
		t.Error("round trip changed scores")
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := json.Marshal(tinyScores())
	cases := []struct {
		mutate func(*Scores)
		errHas string
		reason string
	}{
		{func(s *Scores) { s.Format = "other/1" }, "format", "unknown format"},
		{func(s *Scores) { s.Channels = s.Channels[:3] }, "channel scores", "channels missing"},
		{func(s *Scores) { s.Layers[0].Heads = nil }, "head/group/neuron", "a layer's head scores missing"},
		{func(s *Scores) { s.Layers = s.Layers[:1] }, "layers of scores", "a layer missing"},
		{func(s *Scores) { s.Shape.KVHeads = 3 }, "invalid shape", "heads not a multiple of kv heads"},
		{func(s *Scores) { s.Depth.BI = []float64{1} }, "block-importance", "BI of the wrong length"},
	}
	for _, c := range cases {
		var s Scores
		json.Unmarshal(good, &s)
		c.mutate(&s)
		b, _ := json.Marshal(&s)
		if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: got %v, want error containing %q", c.reason, err, c.errHas)
		}
	}
	if _, err := Parse([]byte("{")); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func FuzzParseScores(f *testing.F) {
	good, _ := json.Marshal(tinyScores())
	f.Add(good)
	f.Add([]byte(`{"format":"minitron-importance/1","shape":{"layers":1,"hidden":1,"heads":1,"kv_heads":1,"ffn":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		// A parsed file must be safe to select from.
		for _, l := range s.Layers {
			_ = Rank(l.Heads)
			_ = GroupScores(l.Heads, s.Shape.KVHeads)
		}
	})
}

func TestSaveRejectsNaN(t *testing.T) {
	s := tinyScores()
	s.Layers[1].Neurons[2] = math.NaN()
	err := s.Save(filepath.Join(t.TempDir(), "s.json"))
	if err == nil || !strings.Contains(err.Error(), "layer 1 neuron score 2") {
		t.Errorf("got %v, want a non-finite neuron score error", err)
	}
}
