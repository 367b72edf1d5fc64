package reproduce

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
)

// HellaSwagItem is one line of a HellaSwag-format jsonl file, the format
// `minitron eval tasks --task hellaswag=PATH` reads.
type HellaSwagItem struct {
	Ind           int      `json:"ind"`
	ActivityLabel string   `json:"activity_label"`
	CtxA          string   `json:"ctx_a"`
	CtxB          string   `json:"ctx_b"`
	Ctx           string   `json:"ctx"`
	Endings       []string `json:"endings"`
	Label         int      `json:"label"`
	SourceID      string   `json:"source_id"`
	Split         string   `json:"split"`
}

// Document is a held-out text with a name for provenance.
type Document struct {
	Name string
	Text string
}

// NextLineTask builds a multiple-choice task from held-out documents: the
// context is up to ctxLines lines of a document and the first part of the
// next line, cut at a space; the true ending is the rest of that line, and
// the distractors are line ends cut the same way from other documents.
//
// The cut is at a space because lm-eval scores `context + " " + ending`:
// so the true choice is the document's own text, byte for byte, as the
// models saw such text in training (cutting between lines would put a space
// where the document has a newline and indentation). Lines are only used
// when they carry enough text to be told apart, so the task measures
// whether a model knows how the line goes on rather than noise.
//
// ctx_b stays empty: lm-eval capitalises ctx_b (lower-casing the rest), which
// would mangle source code.
func NextLineTask(docs []Document, n, ctxLines, choices int, seed int64, label string) ([]HellaSwagItem, error) {
	if choices < 2 {
		return nil, fmt.Errorf("next-line task: need at least 2 choices, got %d", choices)
	}
	type cand struct {
		doc, line int
	}
	lines := make([][]string, len(docs))
	var cands []cand
	var pool []cand
	for d, doc := range docs {
		lines[d] = strings.Split(doc.Text, "\n")
		for i, l := range lines[d] {
			if _, _, ok := cutLine(l); !ok {
				continue
			}
			pool = append(pool, cand{d, i})
			if i >= ctxLines {
				cands = append(cands, cand{d, i})
			}
		}
	}
	if len(cands) == 0 || len(docs) < 2 {
		return nil, fmt.Errorf("next-line task: held-out documents too few or too short (%d documents, %d usable lines)", len(docs), len(cands))
	}
	rng := rand.New(rand.NewSource(seed))
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	if n > len(cands) {
		n = len(cands)
	}
	items := make([]HellaSwagItem, 0, n)
	for k := 0; k < n; k++ {
		c := cands[k]
		head, truth, _ := cutLine(lines[c.doc][c.line])
		seen := map[string]bool{truth: true}
		endings := []string{truth}
		for tries := 0; len(endings) < choices && tries < 1000; tries++ {
			p := pool[rng.Intn(len(pool))]
			if p.doc == c.doc {
				continue
			}
			_, e, _ := cutLine(lines[p.doc][p.line])
			if seen[e] {
				continue
			}
			seen[e] = true
			endings = append(endings, e)
		}
		if len(endings) < choices {
			return nil, fmt.Errorf("next-line task: not enough distinct distractor lines")
		}
		lab := rng.Intn(choices)
		endings[0], endings[lab] = endings[lab], endings[0]
		ctx := strings.Join(append(append([]string{}, lines[c.doc][c.line-ctxLines:c.line]...), head), "\n")
		items = append(items, HellaSwagItem{
			Ind: k, ActivityLabel: label, CtxA: ctx, Ctx: ctx, Endings: endings, Label: lab,
			SourceID: fmt.Sprintf("%s:%d", docs[c.doc].Name, c.line+1), Split: "val",
		})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].Ind < items[j].Ind })
	return items, nil
}

// cutLine splits a line at the first space at or after its middle (of the
// text after the indentation): head keeps the indentation, the ending is
// the rest without the space. Lines too short, too long or without a
// suitable space are refused, and so are lines that lm-eval's
// preprocessing would change.
func cutLine(l string) (head, ending string, ok bool) {
	body := strings.TrimLeft(l, " \t")
	// Double spaces and [brackets] would be rewritten by lm-eval's
	// hellaswag preprocessing, so the ending would no longer be the text.
	if strings.TrimSpace(body) != body || len(body) < 16 || len(body) > 120 ||
		strings.Contains(body, "  ") || strings.ContainsAny(body, "[]") {
		return "", "", false
	}
	indent := l[:len(l)-len(body)]
	mid := len(body) / 2
	i := strings.IndexByte(body[mid:], ' ')
	if i < 0 {
		return "", "", false
	}
	i += mid
	head, ending = body[:i], body[i+1:]
	if len(head) < 4 || len(ending) < 4 || strings.HasSuffix(head, " ") || strings.HasPrefix(ending, " ") {
		return "", "", false
	}
	return indent + head, ending, true
}

// WriteJSONL writes items one JSON object per line.
func WriteJSONL(w io.Writer, items []HellaSwagItem) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return bw.Flush()
}
