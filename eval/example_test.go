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
