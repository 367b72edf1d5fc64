package eval

// Window is one rolling-window log-likelihood request: Context conditions
// the prediction of Pred (Context's last token predicts Pred[0]).
type Window struct {
	Context, Pred []int
}

// RollingWindows splits tokens into lm-eval's rolling windows
// (get_rolling_token_windows followed by make_disjoint_window): every token
// is predicted exactly once, the first from prefix, each window's input is
// at most maxLen tokens, and each window after the first predicts up to
// maxLen-contextLen+1 tokens with the tokens before them as context.
// contextLen 1 gives lm-eval's disjoint windows; with stride S < maxLen use
// contextLen = maxLen-S+1 so each window predicts S tokens.
func RollingWindows(tokens []int, prefix, maxLen, contextLen int) []Window {
	if len(tokens) == 0 || maxLen < 1 {
		return nil
	}
	if contextLen < 1 {
		contextLen = 1
	}
	if contextLen > maxLen {
		contextLen = maxLen
	}
	predLen := maxLen - contextLen + 1
	first := min(maxLen, len(tokens))
	in := append([]int{prefix}, tokens[:first-1]...)
	out := []Window{disjoint(in, tokens[:first])}
	predicted := first
	for predicted < len(tokens) {
		n := min(len(tokens)-predicted, predLen)
		end := predicted + n
		out = append(out, disjoint(tokens[max(0, end-maxLen-1):end-1], tokens[end-n:end]))
		predicted += n
	}
	return out
}

// disjoint drops from the input the tokens that are also predicted, so the
// context and the predictions do not overlap.
func disjoint(in, pred []int) Window {
	return Window{Context: in[:len(in)-(len(pred)-1)], Pred: pred}
}
