package data

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSplitParagraphs(t *testing.T) {
	cases := []struct {
		text   string
		min    int
		want   []string
		reason string
	}{
		{"a\n\nb\n\nc", 1, []string{"a\n\n", "b\n\n", "c"}, "every blank line cuts when min is tiny"},
		{"aaaa\n\nb\n\nc\n", 6, []string{"aaaa\n\n", "b\n\nc\n"}, "pieces reach min before cutting; last is the rest"},
		{"a\n\n\n\nb", 1, []string{"a\n\n\n\n", "b"}, "runs of blank lines stay with the piece before"},
		{"no blank lines\nat all\n", 1, []string{"no blank lines\nat all\n"}, "nowhere to cut"},
		{"a\n  \t\nb", 1, []string{"a\n  \t\n", "b"}, "whitespace-only lines are blank"},
		{"", 10, nil, "empty text"},
	}
	for _, c := range cases {
		got := SplitParagraphs(c.text, c.min)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitParagraphs(%q, %d) = %q, want %q (%s)", c.text, c.min, got, c.want, c.reason)
		}
		if strings.Join(got, "") != c.text {
			t.Errorf("pieces of %q do not concatenate back", c.text)
		}
	}
}

func TestCorpusFilesWalk(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "corp")
	writeFiles(t, root, map[string]string{
		"b.go":        "package b",
		"a/x.go":      "package x",
		"a/y.txt":     "text",
		".git/z.go":   "hidden",
		"a/.hid/w.go": "hidden too",
		"notes.jsonl": `{"text":"j"}`,
	})
	files, err := CorpusFiles(CorpusOptions{Inputs: []string{root}, Glob: "*.go"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range files {
		keys = append(keys, f.Key)
	}
	if want := []string{"corp/a/x.go", "corp/b.go"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v (lexical, glob on base name, hidden dirs skipped)", keys, want)
	}
	if _, err := CorpusFiles(CorpusOptions{Inputs: []string{filepath.Join(dir, "missing")}}); err == nil {
		t.Error("a missing input must be an error, not an empty corpus")
	}
	if _, err := CorpusFiles(CorpusOptions{Inputs: []string{root}, Glob: "*.none"}); err == nil {
		t.Error("no matching files must be an error")
	}
}

func TestWalkDocumentsBadInput(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"good.txt": "hello",
		"bad.txt":  "ok\nbad \xff byte",
		"d.jsonl": `{"text": "one"}
{"body": "no text key"}

not json
{"text": 5}
{"text": "two \u00e9"}
{"text": "raw ` + "\xfe" + `"}
`,
	})
	inputs := []string{filepath.Join(dir, "good.txt"), filepath.Join(dir, "bad.txt"), filepath.Join(dir, "d.jsonl")}
	var docs []Document
	rep, err := WalkDocuments(CorpusOptions{Inputs: inputs}, func(d Document) error {
		docs = append(docs, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, d := range docs {
		texts = append(texts, d.Text)
	}
	if want := []string{"hello", "one", "two é"}; !reflect.DeepEqual(texts, want) {
		t.Errorf("documents %q, want %q", texts, want)
	}
	if docs[1].Source != filepath.Join(dir, "d.jsonl")+":1" || docs[1].Key != "d.jsonl:1" {
		t.Errorf("JSONL document source %q key %q", docs[1].Source, docs[1].Key)
	}
	wantIssues := map[string]int{IssueInvalidUTF8: 2, IssueJSONL: 3}
	if !reflect.DeepEqual(rep.Issues, wantIssues) {
		t.Errorf("issues %v, want %v", rep.Issues, wantIssues)
	}
	var msgs []string
	for _, is := range rep.Examples {
		msgs = append(msgs, is.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, frag := range []string{
		"bad.txt: invalid UTF-8 at byte 7 (line 2)",
		"d.jsonl:2: no string field \"text\"",
		"d.jsonl:4: not a JSON object",
		"d.jsonl:5: no string field \"text\"",
		"d.jsonl:7: invalid UTF-8",
	} {
		if !strings.Contains(all, frag) {
			t.Errorf("issues lack %q:\n%s", frag, all)
		}
	}
	_, err = WalkDocuments(CorpusOptions{Inputs: inputs, Strict: true}, func(Document) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "bad.txt: invalid UTF-8") || !strings.Contains(err.Error(), "Strict") {
		t.Errorf("strict err = %v, want the first issue", err)
	}
}

func TestWalkDocumentsSplitsLargeFiles(t *testing.T) {
	dir := t.TempDir()
	para := strings.Repeat("word ", 30) + "\n\n"
	big := strings.Repeat(para, 100) // 15.6 KB
	writeFiles(t, dir, map[string]string{"book.txt": big, "small.txt": para})
	var docs []Document
	_, err := WalkDocuments(CorpusOptions{Inputs: []string{dir}, MaxDocBytes: 4000, DocBytes: 1000}, func(d Document) error {
		docs = append(docs, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var joined strings.Builder
	for _, d := range docs[:len(docs)-1] {
		joined.WriteString(d.Text)
	}
	if joined.String() != big {
		t.Error("pieces of book.txt do not concatenate back to it")
	}
	if n := len(docs) - 1; n < 10 || n > 16 {
		t.Errorf("book.txt gave %d pieces, want about 15.6KB/1KB", n)
	}
	if docs[0].Key != filepath.Base(dir)+"/book.txt#0" || docs[len(docs)-1].Text != para {
		t.Errorf("keys/pieces: first %q, last %q", docs[0].Key, docs[len(docs)-1].Text)
	}
}

func TestBuiltinCorpora(t *testing.T) {
	if _, err := GOROOT(); err != nil {
		t.Skip(err)
	}
	op, err := BuiltinFiles(BuiltinOpticks)
	if err != nil {
		t.Fatal(err)
	}
	if len(op) != 1 || filepath.Base(op[0]) != "Isaac.Newton-Opticks.txt" {
		t.Errorf("opticks files %v", op)
	}
	if _, err := BuiltinFiles("nope"); err == nil || !strings.Contains(err.Error(), "go-src, opticks") {
		t.Errorf("unknown builtin err = %v", err)
	}
	if testing.Short() {
		return
	}
	gs, err := BuiltinFiles(BuiltinGoSrc)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) < 1000 {
		t.Errorf("go-src has only %d files", len(gs))
	}
	for i := 1; i < len(gs); i++ {
		if gs[i-1] >= gs[i] || !strings.HasSuffix(gs[i], ".go") {
			t.Fatalf("go-src files not sorted .go files at %d: %s", i, gs[i])
		}
	}
}

// Whatever the text, the pieces concatenate back to it, every piece but the
// last reaches the minimum and ends after a blank line.
func FuzzSplitParagraphs(f *testing.F) {
	f.Add("a\n\nb\n\n\nc", 2)
	f.Add("x\r\n\r\ny", 1)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, text string, min int) {
		if min < 0 || min > 1<<20 {
			return
		}
		pieces := SplitParagraphs(text, min)
		if strings.Join(pieces, "") != text {
			t.Fatalf("pieces %q do not concatenate to %q", pieces, text)
		}
		for i, p := range pieces[:max(len(pieces)-1, 0)] {
			if len(p) < min || !strings.HasSuffix(p, "\n") {
				t.Fatalf("piece %d %q shorter than %d or not ending a line", i, p, min)
			}
		}
	})
}

func TestWalkDocumentsUnreadableAndSymlinkRoot(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"real/a.txt": "a", "real/b.txt": "b"})
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "real"), link); err != nil {
		t.Skip(err)
	}
	opts := CorpusOptions{Inputs: []string{link}}
	files, err := CorpusFiles(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Key != "link/a.txt" {
		t.Fatalf("files through a symlinked root: %+v", files)
	}
	// A file that vanishes between listing and reading is counted, not fatal.
	os.Remove(filepath.Join(dir, "real", "a.txt"))
	n := 0
	rep, err := walkFiles(files, opts, func(Document) error { n++; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || rep.Issues[IssueUnreadable] != 1 || !strings.Contains(rep.Examples[0].Error(), "a.txt") {
		t.Errorf("docs %d, issues %v %v; want 1 doc and 1 unreadable naming a.txt", n, rep.Issues, rep.Examples)
	}
	opts.Strict = true
	if _, err := walkFiles(files, opts, func(Document) error { return nil }, nil); err == nil {
		t.Error("--strict ignored an unreadable file")
	}
}
