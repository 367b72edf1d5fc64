package eval

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func fixture(p ...string) string {
	return filepath.Join(append([]string{"testdata", "tasks"}, p...)...)
}

func mustLoad(t *testing.T, name, path string, o TaskOptions) *Task {
	t.Helper()
	tk, err := LoadTask(name, path, o)
	if err != nil {
		t.Fatalf("LoadTask(%s, %s): %v", name, path, err)
	}
	return tk
}

var zeroShot = TaskOptions{Shots: -1}

func TestHellaswagPrompts(t *testing.T) {
	tk := mustLoad(t, "hellaswag", fixture("hellaswag.jsonl"), zeroShot)
	// Expected strings come from running lm-eval's preprocessing (Python
	// str.capitalize, the regex and replace order) on the fixture.
	cases := []struct {
		reason  string
		doc     int
		text    string
		choices []string
		gold    int
	}{
		{"ctx_b is capitalised (rest lower-cased) and joined with a space", 0,
			"Baking bread: A man kneads a ball of dough on a floured table. He",
			[]string{"throws the dough at the ceiling fan.", "paints the table bright green.", "shapes the dough into a loaf and puts it in a tin.", "reads a newspaper while the oven explodes."}, 2},
		{"[title] becomes '. ', other [tags] vanish, capitalize lower-cases 'Push' behind a bracket; string label", 1,
			"Home and Garden: How to water a cactus. Check the soil first. push a finger into the soil up to the knuckle.",
			[]string{" If the soil is dry, water slowly until it drains.", " Cacti need to be watered every hour.", "Plant the cactus upside down in the sink.", " Paint the cactus blue."}, 0},
		{"empty ctx_b leaves a trailing space that strip removes", 2,
			"Riding a bike: A girl sits on a small red bicycle.", nil, 1},
	}
	for _, c := range cases {
		d := tk.Docs[c.doc]
		if d.Text != c.text {
			t.Errorf("%s: text\n got %q\nwant %q", c.reason, d.Text, c.text)
		}
		if c.choices != nil && strings.Join(d.Choices, "|") != strings.Join(c.choices, "|") {
			t.Errorf("%s: choices\n got %q\nwant %q", c.reason, d.Choices, c.choices)
		}
		if d.Gold != c.gold {
			t.Errorf("%s: gold %d want %d", c.reason, d.Gold, c.gold)
		}
	}
	r := tk.Requests(tk.Docs[0])
	if len(r) != 4 || r[2].Context != tk.Docs[0].Text || r[2].Continuation != " shapes the dough into a loaf and puts it in a tin." {
		t.Errorf("requests: %q", r)
	}
	if !tk.AccNorm {
		t.Error("hellaswag reports acc_norm")
	}
}

func TestWinograndePartialScoring(t *testing.T) {
	tk := mustLoad(t, "winogrande", fixture("winogrande.jsonl"), zeroShot)
	r := tk.Requests(tk.Docs[1])
	want := []Pair{
		{"Maria lent her umbrella to Ana because Maria", " was going out into the rain."},
		{"Maria lent her umbrella to Ana because Ana", " was going out into the rain."},
	}
	for i := range want {
		if r[i] != want[i] {
			t.Errorf("choice %d: got %q want %q", i, r[i], want[i])
		}
	}
	if tk.Docs[1].Gold != 1 {
		t.Errorf("answer \"2\" is choice 1, got %d", tk.Docs[1].Gold)
	}
	// One-shot: the example is the solved sentence (correct option + rest).
	tk1 := mustLoad(t, "winogrande", fixture("winogrande.jsonl"), TaskOptions{Shots: 1})
	r = tk1.Requests(tk1.Docs[1])
	wantCtx := "The trophy did not fit in the suitcase because the trophy was too big.\n\nMaria lent her umbrella to Ana because Maria"
	if r[0].Context != wantCtx {
		t.Errorf("1-shot context\n got %q\nwant %q", r[0].Context, wantCtx)
	}
	if tk.AccNorm {
		t.Error("winogrande has no acc_norm (its choices are contexts)")
	}
}

func TestARCFormats(t *testing.T) {
	cases := []struct {
		reason, task, file string
		doc                int
		text               string
		choices            []string
		gold               int
	}{
		{"AI2 nested question.stem/choices layout", "arc_easy", "arc_easy.jsonl", 0,
			"Question: Which of these is a source of light?\nAnswer:", []string{"a rock", "the Sun", "a spoon", "a shadow"}, 1},
		{"numeric labels and 3 choices", "arc_easy", "arc_easy.jsonl", 1,
			"Question: What do plants need to make food?\nAnswer:", []string{"sunlight", "darkness", "plastic"}, 0},
		{"HF flat layout", "arc_challenge", "arc_challenge_hf.jsonl", 1,
			"Question: A ball rolls to a stop on grass. Which force slows it?\nAnswer:", []string{"magnetism", "friction", "buoyancy", "tension"}, 1},
	}
	for _, c := range cases {
		tk := mustLoad(t, c.task, fixture(c.file), zeroShot)
		d := tk.Docs[c.doc]
		if d.Text != c.text || strings.Join(d.Choices, "|") != strings.Join(c.choices, "|") || d.Gold != c.gold {
			t.Errorf("%s: got %q %q %d", c.reason, d.Text, d.Choices, d.Gold)
		}
	}
}

func TestMMLUPrompt(t *testing.T) {
	tk := mustLoad(t, "mmlu", fixture("mmlu"), zeroShot)
	if tk.Shots != 5 {
		t.Fatalf("mmlu defaults to 5-shot, got %d", tk.Shots)
	}
	if len(tk.Docs) != 5 || strings.Join(tk.Groups(), ",") != "toy_cooking,toy_physics" {
		t.Fatalf("docs %d groups %v", len(tk.Docs), tk.Groups())
	}
	var d Doc
	for _, x := range tk.Docs {
		if x.Group == "toy_physics" {
			d = x
			break
		}
	}
	ctx := tk.Context(d)
	want := "The following are multiple choice questions (with answers) about toy physics.\n\n" +
		"What is the unit of force?\nA. joule\nB. newton\nC. watt\nD. pascal\nAnswer: B\n\n" +
		"Which quantity is a vector?\nA. mass\nB. time\nC. velocity\nD. temperature\nAnswer: C\n\n" +
		"An object at rest stays at rest unless acted on by a what?\nA. force\nB. colour\nC. sound\nD. smell\nAnswer: A\n\n" +
		"What is the speed of light in vacuum, roughly?\nA. 300 m/s\nB. 3,000 km/s\nC. 300,000 km/s\nD. 3 km/s\nAnswer: C\n\n" +
		"What does a thermometer measure?\nA. pressure\nB. mass\nC. length\nD. temperature\nAnswer: D\n\n" +
		"What is the unit of energy?\nA. joule\nB. newton\nC. metre\nD. ampere\nAnswer:"
	if ctx != want {
		t.Errorf("5-shot context\n got %q\nwant %q", ctx, want)
	}
	r := tk.Requests(d)
	if len(r) != 4 || r[3].Continuation != " D" || r[0].Context != want {
		t.Errorf("requests %q", r)
	}
	// A quoted multi-line question keeps its newline; limit is per subject.
	tl := mustLoad(t, "mmlu", fixture("mmlu"), TaskOptions{Shots: 0, Limit: 2})
	if len(tl.Docs) != 4 {
		t.Errorf("limit 2 per subject over 2 subjects: %d docs", len(tl.Docs))
	}
	if !strings.Contains(tl.Docs[3].Text, "vacuum?\n(multi-line question)") || !strings.HasSuffix(tl.Docs[3].ID, "_test.csv:2") {
		t.Errorf("multi-line csv question: %q at %s", tl.Docs[3].Text, tl.Docs[3].ID)
	}
	if tl.Context(tl.Docs[0]) != "The following are multiple choice questions (with answers) about toy cooking.\n\n"+tl.Docs[0].Text {
		t.Errorf("0-shot keeps the description: %q", tl.Context(tl.Docs[0]))
	}
	// A single subject file finds its dev split in ../dev.
	ts := mustLoad(t, "mmlu", fixture("mmlu", "test", "toy_cooking_test.csv"), TaskOptions{Shots: 2})
	if !strings.Contains(ts.Context(ts.Docs[0]), "Which ingredient makes bread rise?") {
		t.Errorf("single-file mmlu few-shot: %q", ts.Context(ts.Docs[0]))
	}
}

func TestGSM8KFewShot(t *testing.T) {
	tk := mustLoad(t, "gsm8k", fixture("gsm8k", "test.jsonl"), TaskOptions{Shots: 2, FewShotSampler: SamplerFirstN})
	ctx := tk.Context(tk.Docs[2])
	want := "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: Tom has 3 + 4 = <<3+4=7>>7 apples.\n#### 7\n\n" +
		"Question: A box holds 12 pens. How many pens are in 2 boxes?\nAnswer: 2 boxes hold 2 * 12 = <<2*12=24>>24 pens.\n#### 24\n\n" +
		"Question: The temperature was 3 degrees and fell by 8 degrees. What is it now?\nAnswer:"
	if ctx != want {
		t.Errorf("context\n got %q\nwant %q", ctx, want)
	}
	if tk.Output != GenerateUntil || len(tk.Until) != 3 {
		t.Errorf("gsm8k is generate_until with 3 stop strings")
	}
	// Without a train.jsonl the test file itself is the pool, skipping the item.
	tk2 := mustLoad(t, "gsm8k", fixture("gsm8k", "test.jsonl"), TaskOptions{Shots: 2, FewShotPath: fixture("gsm8k", "test.jsonl"), FewShotSampler: SamplerFirstN})
	tk2.fewshotFromDocs = true
	ctx = tk2.Context(tk2.Docs[0])
	if strings.Count(ctx, "A farmer has 5 cows") != 1 || !strings.Contains(ctx, "1,200 cups") {
		t.Errorf("self-pool must skip the item itself: %q", ctx)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		reason, task, path, want string
	}{
		{"truncated JSON line names file:line", "hellaswag", "testdata/bad/hellaswag_truncated.jsonl", "hellaswag_truncated.jsonl:2: invalid JSON"},
		{"label out of range; blank lines still count", "hellaswag", "testdata/bad/hellaswag_badlabel.jsonl", "hellaswag_badlabel.jsonl:3: label 5 out of range"},
		{"winogrande without a blank", "winogrande", "testdata/bad/winogrande_noblank.jsonl", "winogrande_noblank.jsonl:1: sentence has no blank"},
		{"mmlu row with 5 columns", "mmlu", "testdata/bad/mmlu_short_test.csv", "mmlu_short_test.csv:2: 5 columns"},
		{"mmlu unterminated quote", "mmlu", "testdata/bad/mmlu_quote_test.csv", "mmlu_quote_test.csv:2: malformed csv"},
		{"wrong format: winogrande file read as hellaswag", "hellaswag", fixture("winogrande.jsonl"), "winogrande.jsonl:1: missing field \"activity_label\" (is this a hellaswag"},
		{"wrong format: csv read as jsonl", "arc_easy", fixture("mmlu", "test", "toy_cooking_test.csv"), "toy_cooking_test.csv:1: invalid JSON"},
		{"wrong format: jsonl read as mmlu", "mmlu", fixture("gsm8k", "test.jsonl"), "not a <subject>_test.csv"},
		{"arc file as gsm8k", "gsm8k", fixture("arc_easy.jsonl"), "arc_easy.jsonl:1: field \"question\""},
		{"unknown task", "piqa", fixture("arc_easy.jsonl"), "unknown task \"piqa\""},
		{"missing file", "arc_easy", "testdata/nope.jsonl", "no such file"},
		{"too few few-shot examples", "arc_easy", fixture("arc_easy.jsonl"), "3-shot needs 3"},
	}
	for _, c := range cases {
		o := zeroShot
		if strings.Contains(c.want, "-shot needs") {
			o.Shots = 3
		}
		_, err := LoadTask(c.task, c.path, o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.reason, err, c.want)
		}
	}
}

func TestScoreMC(t *testing.T) {
	choices := []string{"ab", "abcdef", "a"}
	cases := []struct {
		reason       string
		gold         int
		lls          []float64
		acc, accNorm float64
	}{
		{"longest choice loses on raw ll, wins per character", 1, []float64{-4, -6, -2.5}, 0, 1},
		// -4/2=-2, -6/6=-1, -2.5/1=-2.5
		{"ties go to the first (numpy argmax)", 1, []float64{-6, -6, -7}, 0, 1},
		{"gold wins both", 1, []float64{-9, -1, -3}, 1, 1},
		{"raw win, normalised loss", 0, []float64{-3, -3.5, -4}, 1, 0},
		// -1.5, -0.583, -4
	}
	for _, c := range cases {
		o := ScoreMC(Doc{Choices: choices, Gold: c.gold}, c.lls)
		if o.Acc != c.acc || o.AccNorm != c.accNorm {
			t.Errorf("%s: acc %v acc_norm %v, want %v %v", c.reason, o.Acc, o.AccNorm, c.acc, c.accNorm)
		}
	}
	// acc_norm counts characters, not bytes.
	u := Doc{Choices: []string{"été", "abcd"}, Gold: 0}
	if o := ScoreMC(u, []float64{-3.3, -4.2}); o.PredNrm != 1 {
		t.Errorf("é is one character: -3.3/3 > -4.2/4? pred_norm %d", o.PredNrm)
	}
}

func TestMeanStderr(t *testing.T) {
	m, se := MeanStderr([]float64{1, 0, 1, 1})
	// sample sd = sqrt(((.25)^2*3+(.75)^2)/3)=0.5; /sqrt(4) = 0.25
	if m != 0.75 || math.Abs(se-0.25) > 1e-12 {
		t.Errorf("mean %v se %v", m, se)
	}
	if _, se := MeanStderr([]float64{1}); !math.IsNaN(se) {
		t.Errorf("one value has no stderr")
	}
	// Pooling two subtasks equals the stderr of their concatenation when
	// their means agree.
	a, b := []float64{1, 0, 1, 0}, []float64{1, 0, 0, 1, 1, 0}
	_, sa := MeanStderr(a)
	_, sb := MeanStderr(b)
	_, sab := MeanStderr(append(append([]float64{}, a...), b...))
	if p := PooledStderr([]float64{sa, sb}, []int{4, 6}); math.Abs(p-sab) > 0.02 {
		t.Errorf("pooled %v vs concatenated %v", p, sab)
	}
}

func TestGSM8KExtraction(t *testing.T) {
	cases := []struct {
		reason, resp, strict, flexible string
		ref                            string
		strictOK, flexOK               bool
	}{
		{"plain", "3 + 4 = 7\n#### 7", "7", "7", "#### 7", true, true},
		{"thousands comma", "2 * 1200 = 2,400 cups.\n#### 2,400", "2,400", "2,400", "#### 2400", true, true},
		{"dollar sign only flexible sees", "She has $1,250.", InvalidAnswer, "$1,250.", "x\n#### 1250", false, true},
		{"negative", "3 - 8 = -5\n#### -5", "-5", "-5", "#### -5", true, true},
		{"trailing period stripped once", "The answer is 18.", InvalidAnswer, "18.", "#### 18", false, true},
		{"flexible takes the last number", "#### 12\nQuestion: 7 more is 19", "12", "19", "#### 12", true, false},
		{"single digit matches the second alternative", "so x = 5", InvalidAnswer, "5", "#### 5", false, true},
		{"no number at all", "I do not know", InvalidAnswer, InvalidAnswer, "#### 5", false, false},
		{"decimal", "#### 2.50", "2.50", "2.50", "#### 2.50", true, true},
		{"strict takes the first ####", "#### 3\n#### 4", "3", "4", "#### 3", true, false},
	}
	for _, c := range cases {
		s, f := StrictExtract(c.resp), FlexibleExtract(c.resp)
		if s != c.strict || f != c.flexible {
			t.Errorf("%s: strict %q flexible %q, want %q %q", c.reason, s, f, c.strict, c.flexible)
		}
		if ExactMatch(s, c.ref) != c.strictOK || ExactMatch(f, c.ref) != c.flexOK {
			t.Errorf("%s: exact match strict %v flex %v, want %v %v", c.reason, ExactMatch(s, c.ref), ExactMatch(f, c.ref), c.strictOK, c.flexOK)
		}
	}
	if got := CutAtStop(" 5 cows.\n#### 7\n\nQuestion: next", []string{"Question:", "</s>"}); got != " 5 cows.\n#### 7\n\n" {
		t.Errorf("CutAtStop: %q", got)
	}
}

func TestEncodePairMovesTrailingSpace(t *testing.T) {
	lm, tok := loadTiny(t)
	_ = lm
	enc := Encoder{Tok: tok}
	cases := []struct {
		reason, ctx, cont string
		wantCtx, wantCont string
	}{
		{"plain", "Question: x\nAnswer:", " B", "Question: x\nAnswer:", " B"},
		{"trailing space moves to the continuation", "The cat ", "sat", "The cat", " sat"},
		{"trailing newline and unit separator move too", "a\n\x1f", "b", "a", "\n\x1fb"},
	}
	for _, c := range cases {
		ctx, cont, err := enc.EncodePair(c.ctx, c.cont)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Decode(ctx) != c.wantCtx || tok.Decode(cont) != c.wantCont {
			t.Errorf("%s: %q + %q, want %q + %q", c.reason, tok.Decode(ctx), tok.Decode(cont), c.wantCtx, c.wantCont)
		}
	}
	// An empty context is the prefix token alone.
	ctx, _, err := enc.EncodePair("", "hello")
	if p, _ := enc.PrefixToken(); err != nil || len(ctx) != 1 || ctx[0] != p {
		t.Errorf("empty context: %v %v", ctx, err)
	}
}
