// Command mktask writes the demo's HellaSwag-format task: next-line
// prediction on the held-out documents of a Megatron dataset (decoded with
// its tokenizer), built by reproduce.NextLineTask.
//
//	go run ./eval/testdata/demo/mktask DATA_PREFIX_val TOKENIZER N OUT.jsonl [TEXT_OUT]
//
// With TEXT_OUT it also writes the decoded documents (blank-line separated)
// for `eval ppl --text` / `eval tasks --ppl`.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/minitron-dev/minitron/data"
	"github.com/minitron-dev/minitron/reproduce"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mktask:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 4 && len(args) != 5 {
		return fmt.Errorf("usage: mktask DATA_PREFIX TOKENIZER N OUT.jsonl [TEXT_OUT]")
	}
	ds, err := data.OpenIndexed(args[0])
	if err != nil {
		return err
	}
	defer ds.Close()
	tok, err := data.LoadTokenizer(args[1])
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var docs []reproduce.Document
	for i := 0; i < ds.NumDocuments(); i++ {
		d, err := ds.Document(i)
		if err != nil {
			return err
		}
		ids := make([]int, len(d))
		for j, t := range d {
			ids[j] = int(t)
		}
		docs = append(docs, reproduce.Document{Name: fmt.Sprintf("%s#%d", args[0], i), Text: tok.Decode(ids)})
	}
	if len(args) == 5 {
		var text []byte
		for i, d := range docs {
			if i > 0 {
				text = append(text, "\n\n"...)
			}
			text = append(text, d.Text...)
		}
		if err := os.WriteFile(args[4], text, 0o644); err != nil {
			return err
		}
	}
	items, err := reproduce.NextLineTask(docs, n, 2, 4, 1, "Opticks")
	if err != nil {
		return err
	}
	f, err := os.Create(args[3])
	if err != nil {
		return err
	}
	if err := reproduce.WriteJSONL(f, items); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
