package eval_test

import (
	"fmt"

	"github.com/minitron-dev/minitron/eval"
)

func ExampleStrictExtract() {
	resp := " She sells 2 * 1,200 = 2,400 cups.\n#### 2,400"
	fmt.Println(eval.StrictExtract(resp), eval.ExactMatch(eval.StrictExtract(resp), "#### 2400"))
	// Output: 2,400 true
}

func ExampleFlexibleExtract() {
	// No "#### " line: the flexible filter takes the last number, and the
	// exact-match rules drop "$", "," and a trailing period.
	resp := " So she has $1,250."
	fmt.Println(eval.StrictExtract(resp), eval.FlexibleExtract(resp), eval.ExactMatch(eval.FlexibleExtract(resp), "#### 1250"))
	// Output: [invalid] $1,250. true
}

func ExampleRollingWindows() {
	// Ten tokens, windows of 4, disjoint (lm-eval's wikitext setting); -1
	// is the prefix token conditioning the first prediction.
	for _, w := range eval.RollingWindows([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, -1, 4, 1) {
		fmt.Println(w.Context, w.Pred)
	}
	// Output:
	// [-1] [0 1 2 3]
	// [3] [4 5 6 7]
	// [5 6 7] [8 9]
}

func ExampleRougeOf() {
	// Reference first, as rouge-score's score(target, prediction).
	r := eval.RougeOf("The cat sat on the mat.", "the cat lay on the mat", false)
	fmt.Printf("R1 %.3f R2 %.3f RL %.3f\n", r.R1.F, r.R2.F, r.RL.F)
	// Output: R1 0.833 R2 0.600 RL 0.833
}

func ExamplePassAtK() {
	// 200 samples of a problem, 13 correct: pass@1 is the fraction
	// correct, pass@10 the chance that 10 of them include a correct one.
	fmt.Printf("%.4f %.4f\n", eval.PassAtK(200, 13, 1), eval.PassAtK(200, 13, 10))
	// Output: 0.0650 0.4976
}

func ExampleNewPyRandom() {
	// CPython: random.Random(1234).sample(range(10), 3)
	fmt.Println(eval.NewPyRandom(1234).Sample(10, 3))
	// Output: [7 1 0]
}
