package cuda

import "strings"

// ptxEntries lists the kernel names (".visible .entry NAME(") in a PTX
// text. It has no build tag so the default build's tests can check the
// committed PTX against the kernels the Go side launches.
func ptxEntries(src string) []string {
	var names []string
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, ".visible .entry "); ok {
			if i := strings.IndexByte(rest, '('); i > 0 {
				names = append(names, rest[:i])
			}
		}
	}
	return names
}
