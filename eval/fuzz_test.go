package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzTaskReaders feeds arbitrary bytes to every task file reader: each
// must return items or an error naming the file, never panic.
func FuzzTaskReaders(f *testing.F) {
	for _, p := range []string{"hellaswag.jsonl", "winogrande.jsonl", "arc_easy.jsonl", "arc_challenge_hf.jsonl", "gsm8k/test.jsonl", "mmlu/test/toy_physics_test.csv", "xlsum.jsonl", "../code/humaneval.jsonl", "../code/mbpp.jsonl"} {
		b, err := os.ReadFile(fixture(p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"sentence": "_", "option1": "", "option2": "", "answer": "2"}`))
	f.Add([]byte("{\"question\": {\"stem\": \"x\", \"choices\": []}, \"answerKey\": \"A\"}\n"))
	f.Add([]byte("\"a\nb\",1,2,3,4,A\n"))
	dir := f.TempDir()
	readers := map[string]func(string) ([]Doc, error){
		"hellaswag": readHellaswag, "winogrande": readWinogrande, "arc": readARC, "gsm8k": readGSM8K,
		"mmlu":  func(p string) ([]Doc, error) { return readMMLUCSV(p, "x") },
		"xlsum": readXLSum, "code": ReadCodeProblems,
		"samples": func(p string) ([]Doc, error) {
			m, err := ReadCodeSamples(p)
			var docs []Doc
			for id := range m {
				docs = append(docs, Doc{ID: id})
			}
			return docs, err
		},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "in")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for name, read := range readers {
			docs, err := read(p)
			if err != nil {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("%s: error does not name the file: %v", name, err)
				}
				continue
			}
			for _, d := range docs {
				if name == "code" && (d.Problem == nil || d.Problem.TaskID != d.ID) {
					t.Errorf("code: item %q without its problem", d.ID)
				}
				if len(d.Choices) > 0 && (d.Gold < 0 || d.Gold >= len(d.Choices)) {
					t.Errorf("%s: gold %d out of %d choices", name, d.Gold, len(d.Choices))
				}
			}
		}
	})
}

// FuzzExtract checks the gsm8k filters never panic and that a response
// ending in "#### N" for a plain integer N is matched by both.
func FuzzExtract(f *testing.F) {
	f.Add("The answer is $1,234.50.", "7")
	f.Add("#### -5", "12")
	f.Fuzz(func(t *testing.T, resp, n string) {
		_ = StrictExtract(resp)
		_ = FlexibleExtract(resp)
		_ = ExactMatch(resp, n)
		for _, r := range n {
			if r < '0' || r > '9' {
				return
			}
		}
		if n == "" {
			return
		}
		full := "work\n#### " + n
		if s := StrictExtract(full); !ExactMatch(s, full) {
			t.Errorf("strict %q does not match %q", s, full)
		}
		if s := FlexibleExtract(full); !ExactMatch(s, full) {
			t.Errorf("flexible %q does not match %q", s, full)
		}
	})
}

// FuzzPartial feeds arbitrary partial-results files to a resumed run's
// reader: it must resume, or refuse with an error naming the file, never
// panic; whatever it keeps must be items of the task.
func FuzzPartial(f *testing.F) {
	tk, err := LoadTask("xlsum", fixture("xlsum.jsonl"), TaskOptions{Shots: -1})
	if err != nil {
		f.Fatal(err)
	}
	head := fmt.Sprintf("{\"partial\":\"xlsum\",\"key\":%q}\n", taskFingerprint(tk, "k"))
	f.Add([]byte(head + `{"id":"` + tk.Docs[0].ID + `","response":"x","rouge":{"rouge1":{"p":1,"r":1,"f":1}},"prompt_sha":"` + promptSHA(tk.Context(tk.Docs[0])) + `"}` + "\n"))
	f.Add([]byte(head + `{"id": "cut`))
	f.Add([]byte(`{"partial":"xlsum","key":"other"}` + "\n"))
	f.Add([]byte("not json\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "partial.jsonl")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		part, err := openPartial(p, tk, "k")
		if err != nil {
			if !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "partial results") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		part.close()
	})
}
