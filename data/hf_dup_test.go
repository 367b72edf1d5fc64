package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHFTokenizerDuplicateIDs(t *testing.T) {
	// Two strings for one id made Decode pick one by map order: the same
	// ids decoded differently from run to run.
	cases := []struct {
		name, json, want, reason string
	}{
		{"vocab duplicate", `{"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":1},"merges":[]}}`,
			`model.vocab: id 1 is given to both "b" and "c"`, "decode of id 1 depended on map order"},
		{"added duplicate", `{"added_tokens":[{"id":2,"content":"<x>"},{"id":2,"content":"<y>"}],"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]}}`,
			`added_tokens: id 2 is given to both "<x>" and "<y>"`, "two added tokens for one id"},
		{"added over another vocab token", `{"added_tokens":[{"id":1,"content":"<x>"}],"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]}}`,
			`added_tokens: id 1 is given to both "b" (model.vocab) and "<x>"`, "an added token shadowing a different vocab entry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tokenizer.json")
			os.WriteFile(p, []byte(c.json), 0o644)
			_, err := LoadHFTokenizer(p)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v; want the file and %q (%s)", err, c.want, c.reason)
			}
		})
	}
	// An added token repeating its own vocab entry (HF writes <s> in both)
	// is one token, not a duplicate.
	ok := `{"added_tokens":[{"id":1,"content":"b","special":true},{"id":1,"content":"b","special":true}],"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]}}`
	if _, err := ParseHFTokenizer([]byte(ok)); err != nil {
		t.Errorf("added token equal to its vocab entry refused: %v", err)
	}
}

func FuzzHFTokenizerDecodeDeterministic(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"c":1},"merges":[]}}`))
	f.Add([]byte(`{"added_tokens":[{"id":1,"content":"b"}],"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`))
	addFixtureSeeds(f, "gpt2-tiny.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		// An accepted tokenizer.json has one string per id, so two parses
		// of the same bytes decode every id alike.
		t1, err := ParseHFTokenizer(b)
		if err != nil {
			return
		}
		t2, err := ParseHFTokenizer(b)
		if err != nil {
			t.Fatalf("second parse failed: %v", err)
		}
		for id := 0; id < t1.VocabSize(); id++ {
			if a, b := t1.Token(id), t2.Token(id); a != b {
				t.Fatalf("id %d decodes to %q and %q", id, a, b)
			}
		}
	})
}
