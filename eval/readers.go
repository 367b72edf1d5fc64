package eval

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ---- hellaswag ----

var bracketRe = regexp.MustCompile(`\[.*?\]`)

// hellaswagPreprocess cleans WikiHow artifacts as lm-eval's hellaswag does:
// strip, " [title]" → ". ", drop [bracketed] tags, collapse double spaces
// (once, as a single replace pass).
func hellaswagPreprocess(s string) string {
	s = strings.TrimFunc(s, isPySpace)
	s = strings.ReplaceAll(s, " [title]", ". ")
	s = bracketRe.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "  ", " ")
}

// pyCapitalize is Python's str.capitalize: first character upper (title)
// case, the rest lower case.
func pyCapitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}

// parseLabel accepts an integer label or a string holding one (the HF copy
// of hellaswag stores "label": "2").
func parseLabel(raw json.RawMessage) (int, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("label %s is neither an integer nor a string", raw)
	}
	return strconv.Atoi(strings.TrimSpace(s))
}

const hellaswagWhat = "hellaswag jsonl (activity_label, ctx_a, ctx_b, endings, label)"

func readHellaswag(path string) ([]Doc, error) {
	var docs []Doc
	err := readJSONL(path, hellaswagWhat, func(line int, obj map[string]json.RawMessage) error {
		var act, a, b string
		var endings []string
		for _, f := range []struct {
			k string
			v any
		}{{"activity_label", &act}, {"ctx_a", &a}, {"ctx_b", &b}, {"endings", &endings}} {
			if err := field(obj, f.k, f.v, path, line, hellaswagWhat); err != nil {
				return err
			}
		}
		raw, ok := obj["label"]
		if !ok {
			return errAt(path, line, "missing field \"label\" (unlabelled test split? hellaswag needs labelled items)")
		}
		gold, err := parseLabel(raw)
		if err != nil {
			return errAt(path, line, "%v", err)
		}
		if len(endings) < 2 {
			return errAt(path, line, "%d endings; a multiple-choice item needs at least 2", len(endings))
		}
		if gold < 0 || gold >= len(endings) {
			return errAt(path, line, "label %d out of range for %d endings", gold, len(endings))
		}
		ch := make([]string, len(endings))
		for i, e := range endings {
			ch[i] = hellaswagPreprocess(e)
		}
		docs = append(docs, Doc{
			ID:      fmt.Sprintf("%s:%d", path, line),
			Text:    hellaswagPreprocess(act + ": " + a + " " + pyCapitalize(b)),
			Choices: ch,
			Gold:    gold,
		})
		return nil
	})
	return docs, err
}

// ---- winogrande ----

const winograndeWhat = "winogrande jsonl (sentence with _, option1, option2, answer)"

func readWinogrande(path string) ([]Doc, error) {
	var docs []Doc
	err := readJSONL(path, winograndeWhat, func(line int, obj map[string]json.RawMessage) error {
		var sent, o1, o2, ans string
		for _, f := range []struct {
			k string
			v *string
		}{{"sentence", &sent}, {"option1", &o1}, {"option2", &o2}, {"answer", &ans}} {
			if err := field(obj, f.k, f.v, path, line, winograndeWhat); err != nil {
				return err
			}
		}
		idx := strings.Index(sent, "_")
		if idx < 0 {
			return errAt(path, line, "sentence has no blank \"_\" to fill")
		}
		var gold int
		switch ans {
		case "1":
			gold = 0
		case "2":
			gold = 1
		default:
			return errAt(path, line, "answer %q must be \"1\" or \"2\"", ans)
		}
		// Partial scoring: each option fills the blank in the context and
		// only the rest of the sentence is scored.
		docs = append(docs, Doc{
			ID:            fmt.Sprintf("%s:%d", path, line),
			Choices:       []string{sent[:idx] + o1, sent[:idx] + o2},
			Gold:          gold,
			Target:        strings.TrimFunc(sent[idx+1:], isPySpace),
			MultipleInput: true,
		})
		return nil
	})
	return docs, err
}

// ---- arc ----

const arcWhat = "ARC jsonl (question {stem, choices [{text, label}]} or question + choices {text, label}, answerKey)"

type arcChoice struct {
	Text  string `json:"text"`
	Label string `json:"label"`
}

// readARC reads AI2's ARC jsonl (question.stem, question.choices) and the
// flattened layout of the HF copy (question, choices.text/label).
func readARC(path string) ([]Doc, error) {
	var docs []Doc
	err := readJSONL(path, arcWhat, func(line int, obj map[string]json.RawMessage) error {
		var key string
		if err := field(obj, "answerKey", &key, path, line, arcWhat); err != nil {
			return err
		}
		qraw, ok := obj["question"]
		if !ok {
			return errAt(path, line, "missing field \"question\" (is this a %s file?)", arcWhat)
		}
		var stem string
		var choices []arcChoice
		if json.Unmarshal(qraw, &stem) == nil {
			var flat struct {
				Text  []string `json:"text"`
				Label []string `json:"label"`
			}
			if err := field(obj, "choices", &flat, path, line, arcWhat); err != nil {
				return err
			}
			if len(flat.Text) != len(flat.Label) {
				return errAt(path, line, "choices has %d texts and %d labels", len(flat.Text), len(flat.Label))
			}
			for i := range flat.Text {
				choices = append(choices, arcChoice{flat.Text[i], flat.Label[i]})
			}
		} else {
			var q struct {
				Stem    *string     `json:"stem"`
				Choices []arcChoice `json:"choices"`
			}
			if err := json.Unmarshal(qraw, &q); err != nil || q.Stem == nil {
				return errAt(path, line, "field \"question\" is neither a string nor {stem, choices} (is this a %s file?)", arcWhat)
			}
			stem, choices = *q.Stem, q.Choices
		}
		if len(choices) < 2 {
			return errAt(path, line, "%d choices; a multiple-choice item needs at least 2", len(choices))
		}
		gold := -1
		texts := make([]string, len(choices))
		for i, c := range choices {
			texts[i] = c.Text
			if c.Label == key {
				gold = i
			}
		}
		if gold < 0 {
			return errAt(path, line, "answerKey %q is not one of the choice labels", key)
		}
		docs = append(docs, Doc{
			ID:      fmt.Sprintf("%s:%d", path, line),
			Text:    "Question: " + stem + "\nAnswer:",
			Choices: texts,
			Gold:    gold,
		})
		return nil
	})
	return docs, err
}

// ---- gsm8k ----

const gsm8kWhat = "gsm8k jsonl (question, answer ending in \"#### N\")"

func readGSM8K(path string) ([]Doc, error) {
	var docs []Doc
	err := readJSONL(path, gsm8kWhat, func(line int, obj map[string]json.RawMessage) error {
		var q, a string
		if err := field(obj, "question", &q, path, line, gsm8kWhat); err != nil {
			return err
		}
		if err := field(obj, "answer", &a, path, line, gsm8kWhat); err != nil {
			return err
		}
		if !strings.Contains(a, "#### ") {
			return errAt(path, line, "answer has no final \"#### N\" line")
		}
		docs = append(docs, Doc{
			ID:     fmt.Sprintf("%s:%d", path, line),
			Text:   "Question: " + q + "\nAnswer:",
			Target: a,
		})
		return nil
	})
	return docs, err
}

// ---- mmlu ----

var mmluLetters = []string{"A", "B", "C", "D"}

// readMMLUCSV reads one of MMLU's per-subject files: no header, six columns
// question, A, B, C, D, answer letter; fields may span lines.
func readMMLUCSV(path, subject string) ([]Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var docs []Doc
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, errAt(path, pe.Line, "malformed csv: %v (expected MMLU csv: question,A,B,C,D,answer)", pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != 6 {
			return nil, errAt(path, line, "%d columns; MMLU csv rows have 6 (question,A,B,C,D,answer)", len(rec))
		}
		ans := strings.TrimSpace(rec[5])
		if len(docs) == 0 && strings.EqualFold(ans, "answer") {
			continue // a header row written by some exporters
		}
		gold := strings.Index("ABCD", ans)
		if len(ans) != 1 || gold < 0 {
			return nil, errAt(path, line, "answer %q must be one of A, B, C, D", ans)
		}
		q := strings.TrimFunc(rec[0], isPySpace)
		text := q + "\nA. " + rec[1] + "\nB. " + rec[2] + "\nC. " + rec[3] + "\nD. " + rec[4] + "\nAnswer:"
		docs = append(docs, Doc{
			ID:      fmt.Sprintf("%s:%d", path, line),
			Text:    text,
			Choices: mmluLetters,
			Gold:    gold,
			Group:   subject,
		})
	}
	if len(docs) == 0 {
		return nil, errAt(path, 0, "no items (expected MMLU csv: question,A,B,C,D,answer)")
	}
	return docs, nil
}

func mmluDescription(d Doc) string {
	return "The following are multiple choice questions (with answers) about " +
		strings.ReplaceAll(d.Group, "_", " ") + ".\n\n"
}

// loadMMLU reads MMLU in the layout of its original archive: path is the
// data directory (test/<subject>_test.csv, dev/<subject>_dev.csv) or one
// <subject>_test.csv whose dev file sits in ../dev/. The few-shot examples of
// each subject are the first Shots items of its dev file.
func loadMMLU(path string, o TaskOptions) (*Task, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("mmlu: %w", err)
	}
	var tests []string
	devDir := o.FewShotPath
	if st.IsDir() {
		tests, _ = filepath.Glob(filepath.Join(path, "test", "*_test.csv"))
		if len(tests) == 0 {
			tests, _ = filepath.Glob(filepath.Join(path, "*_test.csv"))
			if devDir == "" {
				devDir = filepath.Join(filepath.Dir(filepath.Clean(path)), "dev")
			}
		} else if devDir == "" {
			devDir = filepath.Join(path, "dev")
		}
		if len(tests) == 0 {
			return nil, fmt.Errorf("mmlu: %s holds no test/<subject>_test.csv files (expected MMLU's data directory)", path)
		}
	} else {
		if !strings.HasSuffix(path, "_test.csv") && !strings.HasSuffix(path, "_val.csv") {
			return nil, fmt.Errorf("mmlu: %s is not a <subject>_test.csv file (expected MMLU's csv layout)", path)
		}
		tests = []string{path}
		if devDir == "" {
			devDir = filepath.Join(filepath.Dir(filepath.Dir(path)), "dev")
		}
	}
	sort.Strings(tests)
	t := &Task{Name: "mmlu", Output: MultipleChoice, Shots: 5, AccNorm: true,
		fewshot: map[string][]Doc{}, description: mmluDescription}
	if o.Shots >= 0 {
		t.Shots = o.Shots
	}
	var docs []Doc
	for _, tp := range tests {
		base := filepath.Base(tp)
		subject := strings.TrimSuffix(strings.TrimSuffix(base, "_test.csv"), "_val.csv")
		d, err := readMMLUCSV(tp, subject)
		if err != nil {
			return nil, err
		}
		// lm-eval treats each subject as a task, so --limit applies per subject.
		docs = append(docs, limitDocs(d, o.Limit)...)
		if t.Shots > 0 {
			dp := filepath.Join(devDir, subject+"_dev.csv")
			if !fileExists(dp) {
				return nil, fmt.Errorf("mmlu: %d-shot needs %s (the dev split of %s)", t.Shots, dp, subject)
			}
			dev, err := readMMLUCSV(dp, subject)
			if err != nil {
				return nil, err
			}
			if len(dev) < t.Shots {
				return nil, fmt.Errorf("mmlu: %s has %d items, %d-shot needs %d", dp, len(dev), t.Shots, t.Shots)
			}
			t.fewshot[subject] = dev
		}
	}
	t.Docs = docs
	return t, nil
}
