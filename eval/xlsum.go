package eval

import (
	"encoding/json"
	"fmt"
	"strings"
)

// XLSum follows lm-eval's XSum-style summarisation task (its GEM xsum
// task; XL-Sum is the multilingual successor of XSum, BBC articles with a
// one-sentence summary): the prompt is "{text}\nShort summary:", the
// target " {summary}", greedy generation until a newline, at most
// xlsumMaxTokens tokens, scored by ROUGE-1/2/L F1.
var xlsumStops = []string{"\n"}

// xlsumMaxTokens caps a summary: XL-Sum's English summaries are one or two
// sentences (about 25 words), so 128 tokens only cut a run-on generation.
const xlsumMaxTokens = 128

// Code completion caps: lm-eval's humaneval sets max_gen_toks 1024, its
// mbpp keeps the default 256.
const (
	humanEvalMaxTokens = 1024
	mbppMaxTokens      = 256
)

const xlsumWhat = "XL-Sum jsonl (id, url, title, summary, text)"

func readXLSum(path string) ([]Doc, error) {
	var docs []Doc
	err := readJSONL(path, xlsumWhat, func(line int, obj map[string]json.RawMessage) error {
		var id, text, summary string
		for _, f := range []struct {
			k string
			v *string
		}{{"id", &id}, {"text", &text}, {"summary", &summary}} {
			if err := field(obj, f.k, f.v, path, line, xlsumWhat); err != nil {
				return err
			}
		}
		// url and title are not used, but a present one must be a string.
		for _, k := range []string{"url", "title"} {
			if _, ok := obj[k]; ok {
				var s string
				if err := field(obj, k, &s, path, line, xlsumWhat); err != nil {
					return err
				}
			}
		}
		if strings.TrimSpace(text) == "" {
			return errAt(path, line, "empty text: nothing to summarise")
		}
		docs = append(docs, Doc{
			ID:     fmt.Sprintf("%s:%d", path, line),
			Text:   text + "\nShort summary:",
			Target: summary,
		})
		return nil
	})
	return docs, err
}
