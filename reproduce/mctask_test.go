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
			fmt.Fprintf(&b, "\tv%d := compute(a, b, doc%d_line%d)\n", i, d, i)
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
		// lm-eval scores context + " " + ending: for the true ending
		// that is the document's own text.
		if !strings.Contains(doc, it.CtxA+" "+truth+"\n") {
			t.Fatalf("item %d: true ending %q does not follow its context in %s", it.Ind, truth, name)
		}
		if strings.Count(it.CtxA, "\n") != 4 {
			t.Fatalf("item %d: context %q does not hold 4 whole lines and a line head", it.Ind, it.CtxA)
		}
		for j, e := range it.Endings {
			if j != it.Label && strings.Contains(doc, " "+e+"\n") {
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

func TestCutLine(t *testing.T) {
	for _, tc := range []struct {
		line, head, ending string
		ok                 bool
		reason             string
	}{
		{"\tx := compute(a, b, c) + 1", "\tx := compute(a,", "b, c) + 1", true, "cut at the first space after the middle, indentation kept"},
		{"of Light, that the Rays which are refracted", "of Light, that the Rays", "which are refracted", true, "prose"},
		{"short line", "", "", false, "too short to tell apart"},
		{"\tx := averyveryverylongidentifierwithoutspaces", "", "", false, "no space after the middle"},
		{"x := compute(a,  b) + 1 and more", "", "", false, "double space at the cut would be collapsed by the preprocessing"},
		{"x := compute(a, b) + 1 and more ", "", "", false, "trailing space"},
		{"x := compute(a[i], b) + 1 and more", "", "", false, "brackets are deleted by the preprocessing"},
	} {
		h, e, ok := cutLine(tc.line)
		if ok != tc.ok || h != tc.head || e != tc.ending {
			t.Errorf("%s: cutLine(%q) = %q, %q, %v", tc.reason, tc.line, h, e, ok)
		}
		if ok && h+" "+e != tc.line {
			t.Errorf("%s: head + space + ending is not the line", tc.reason)
		}
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
