package eval

import "strings"

// PorterStem is NLTK's PorterStemmer in its default NLTK_EXTENSIONS mode,
// which rouge-score's use_stemmer calls; a word-for-word port, so ROUGE with
// stemming matches rouge-score's numbers. The word is lower-cased first.
func PorterStem(word string) string {
	w := strings.ToLower(word)
	if s, ok := porterIrregular[word]; ok {
		return s
	}
	if len(word) <= 2 {
		return w
	}
	w = step1a(w)
	w = step1b(w)
	w = step1c(w)
	w = step2(w)
	w = step3(w)
	w = step4(w)
	w = step5a(w)
	return step5b(w)
}

var porterIrregular = func() map[string]string {
	forms := map[string][]string{
		"sky": {"sky", "skies"}, "die": {"dying"}, "lie": {"lying"}, "tie": {"tying"},
		"news": {"news"}, "inning": {"innings", "inning"}, "outing": {"outings", "outing"},
		"canning": {"cannings", "canning"}, "howe": {"howe"}, "proceed": {"proceed"},
		"exceed": {"exceed"}, "succeed": {"succeed"},
	}
	m := map[string]string{}
	for k, vs := range forms {
		for _, v := range vs {
			m[v] = k
		}
	}
	return m
}()

func isConsonant(w string, i int) bool {
	switch w[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !isConsonant(w, i-1)
	}
	return true
}

// measure is m in [C](VC){m}[V]: the number of vowel→consonant changes.
func measure(s string) int {
	m := 0
	for i := 1; i < len(s); i++ {
		if !isConsonant(s, i-1) && isConsonant(s, i) {
			m++
		}
	}
	return m
}

func posMeasure(s string) bool { return measure(s) > 0 }
func measureGT1(s string) bool { return measure(s) > 1 }

func containsVowel(s string) bool {
	for i := range s {
		if !isConsonant(s, i) {
			return true
		}
	}
	return false
}

func endsDoubleConsonant(w string) bool {
	n := len(w)
	return n >= 2 && w[n-1] == w[n-2] && isConsonant(w, n-1)
}

func endsCVC(w string) bool {
	n := len(w)
	if n >= 3 && isConsonant(w, n-3) && !isConsonant(w, n-2) && isConsonant(w, n-1) &&
		w[n-1] != 'w' && w[n-1] != 'x' && w[n-1] != 'y' {
		return true
	}
	return n == 2 && !isConsonant(w, 0) && isConsonant(w, 1)
}

type porterRule struct {
	suffix, repl string
	cond         func(stem string) bool // nil: unconditional
}

// doubleSuffix marks NLTK's "*d" rule: the word ends in a double consonant.
const doubleSuffix = "*d"

// applyRules is NLTK's _apply_rule_list: the first rule whose suffix
// matches decides, whether or not its condition holds.
func applyRules(w string, rules []porterRule) string {
	for _, r := range rules {
		if r.suffix == doubleSuffix && endsDoubleConsonant(w) {
			stem := w[:len(w)-2]
			if r.cond == nil || r.cond(stem) {
				return stem + r.repl
			}
			return w
		}
		if strings.HasSuffix(w, r.suffix) {
			stem := w[:len(w)-len(r.suffix)]
			if r.cond == nil || r.cond(stem) {
				return stem + r.repl
			}
			return w
		}
	}
	return w
}

func step1a(w string) string {
	if strings.HasSuffix(w, "ies") && len(w) == 4 {
		return w[:len(w)-3] + "ie"
	}
	return applyRules(w, []porterRule{{"sses", "ss", nil}, {"ies", "i", nil}, {"ss", "ss", nil}, {"s", "", nil}})
}

func step1b(w string) string {
	if strings.HasSuffix(w, "ied") {
		if len(w) == 4 {
			return w[:len(w)-3] + "ie"
		}
		return w[:len(w)-3] + "i"
	}
	if strings.HasSuffix(w, "eed") {
		stem := w[:len(w)-3]
		if measure(stem) > 0 {
			return stem + "ee"
		}
		return w
	}
	var inter string
	ok := false
	for _, suf := range []string{"ed", "ing"} {
		if strings.HasSuffix(w, suf) {
			inter = w[:len(w)-len(suf)]
			if containsVowel(inter) {
				ok = true
				break
			}
		}
	}
	if !ok {
		return w
	}
	var last string
	if inter != "" {
		last = inter[len(inter)-1:]
	}
	return applyRules(inter, []porterRule{
		{"at", "ate", nil},
		{"bl", "ble", nil},
		{"iz", "ize", nil},
		{doubleSuffix, last, func(string) bool { return last != "l" && last != "s" && last != "z" }},
		{"", "e", func(s string) bool { return measure(s) == 1 && endsCVC(s) }},
	})
}

func step1c(w string) string {
	return applyRules(w, []porterRule{{"y", "i", func(s string) bool {
		return len(s) > 1 && isConsonant(s, len(s)-1)
	}}})
}

func step2(w string) string {
	if strings.HasSuffix(w, "alli") && posMeasure(w[:len(w)-4]) {
		return step2(w[:len(w)-4] + "al")
	}
	return applyRules(w, []porterRule{
		{"ational", "ate", posMeasure},
		{"tional", "tion", posMeasure},
		{"enci", "ence", posMeasure},
		{"anci", "ance", posMeasure},
		{"izer", "ize", posMeasure},
		{"bli", "ble", posMeasure},
		{"alli", "al", posMeasure},
		{"entli", "ent", posMeasure},
		{"eli", "e", posMeasure},
		{"ousli", "ous", posMeasure},
		{"ization", "ize", posMeasure},
		{"ation", "ate", posMeasure},
		{"ator", "ate", posMeasure},
		{"alism", "al", posMeasure},
		{"iveness", "ive", posMeasure},
		{"fulness", "ful", posMeasure},
		{"ousness", "ous", posMeasure},
		{"aliti", "al", posMeasure},
		{"iviti", "ive", posMeasure},
		{"biliti", "ble", posMeasure},
		{"fulli", "ful", posMeasure},
		// NLTK measures the word less "ogi", not the stem less "logi".
		{"logi", "log", func(string) bool { return posMeasure(w[:len(w)-3]) }},
	})
}

func step3(w string) string {
	return applyRules(w, []porterRule{
		{"icate", "ic", posMeasure}, {"ative", "", posMeasure}, {"alize", "al", posMeasure},
		{"iciti", "ic", posMeasure}, {"ical", "ic", posMeasure}, {"ful", "", posMeasure},
		{"ness", "", posMeasure},
	})
}

func step4(w string) string {
	return applyRules(w, []porterRule{
		{"al", "", measureGT1}, {"ance", "", measureGT1}, {"ence", "", measureGT1},
		{"er", "", measureGT1}, {"ic", "", measureGT1}, {"able", "", measureGT1},
		{"ible", "", measureGT1}, {"ant", "", measureGT1}, {"ement", "", measureGT1},
		{"ment", "", measureGT1}, {"ent", "", measureGT1},
		{"ion", "", func(s string) bool {
			return measure(s) > 1 && (s[len(s)-1] == 's' || s[len(s)-1] == 't')
		}},
		{"ou", "", measureGT1}, {"ism", "", measureGT1}, {"ate", "", measureGT1},
		{"iti", "", measureGT1}, {"ous", "", measureGT1}, {"ive", "", measureGT1},
		{"ize", "", measureGT1},
	})
}

func step5a(w string) string {
	if strings.HasSuffix(w, "e") {
		stem := w[:len(w)-1]
		if m := measure(stem); m > 1 || m == 1 && !endsCVC(stem) {
			return stem
		}
	}
	return w
}

func step5b(w string) string {
	return applyRules(w, []porterRule{{"ll", "l", func(string) bool { return measure(w[:len(w)-1]) > 1 }}})
}
