package reproduce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func testDocs(n int) []Document {
	var docs []Document
	for d := 0; d < n; d++ {
		var b strings.Builder
		for i := 0; i < 20; i++ {
			fmt.Fprintf(&b, "\tvalue%d := compute(doc%d, line%d)\n", i, d, i)
		}
		docs = append(docs, Document{Name: fmt.Sprintf("f%d.go", d), Text: b.String()})
	}
	return docs
}

func TestNextLineTask(t *testing.T) {
	docs := testDocs(5)
	items, err := NextLineTask(docs, 30, 4, 4, 1, "Go")
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 30 {
		t.Fatalf("got %d items, want 30", len(items))
	}
	labels := map[int]int{}
	for _, it := range items {
		if len(it.Endings) != 4 {
			t.Fatalf("item %d has %d endings", it.Ind, len(it.Endings))
		}
		labels[it.Label]++
		// The true ending follows the context in its own document; the
		// distractors come from other documents.
		truth := it.Endings[it.Label]
		var doc string
		name := strings.Split(it.SourceID, ":")[0]
		for _, d := range docs {
			if d.Name == name {
				doc = d.Text
			}
		}
		if !strings.Contains(doc, it.CtxA+"\n\t"+truth+"\n") {
			t.Fatalf("item %d: true ending %q does not follow its context in %s", it.Ind, truth, name)
		}
		for j, e := range it.Endings {
			if j != it.Label && strings.Contains(doc, e) {
				t.Fatalf("item %d: distractor %q comes from the same document", it.Ind, e)
			}
		}
		if it.CtxB != "" {
			t.Fatalf("ctx_b must stay empty (lm-eval capitalises it)")
		}
	}
	if len(labels) < 3 {
		t.Fatalf("labels not spread over positions: %v", labels)
	}
	again, _ := NextLineTask(docs, 30, 4, 4, 1, "Go")
	var b1, b2 bytes.Buffer
	WriteJSONL(&b1, items)
	WriteJSONL(&b2, again)
	if b1.String() != b2.String() {
		t.Fatal("same seed gave a different task")
	}
	var first HellaSwagItem
	if err := json.Unmarshal([]byte(strings.SplitN(b1.String(), "\n", 2)[0]), &first); err != nil {
		t.Fatal(err)
	}
}

func TestNextLineTaskErrors(t *testing.T) {
	for _, tc := range []struct {
		docs    []Document
		choices int
		reason  string
	}{
		{testDocs(1), 4, "distractors need a second document"},
		{[]Document{{"a", "x"}, {"b", "y"}}, 4, "no usable lines"},
		{testDocs(3), 1, "one choice is no task"},
	} {
		if _, err := NextLineTask(tc.docs, 5, 2, tc.choices, 1, "Go"); err == nil {
			t.Errorf("%s: expected an error", tc.reason)
		}
	}
}
