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

// ptxParamClasses maps each kernel of a PTX text to its parameters'
// classes, one letter each: 'f' for .f32, 'd' for .f64, 'i' for any other
// scalar (pointers and integers), '?' for anything else (an aggregate).
// The CPU emulator needs them to call a kernel; the tests check that every
// parameter fits gorgonia.org/cu's 8-byte slots.
func ptxParamClasses(src string) map[string]string {
	out := map[string]string{}
	name := ""
	var cls []byte
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, ".visible .entry "); ok {
			if i := strings.IndexByte(rest, '('); i > 0 {
				name, cls = rest[:i], nil
				out[name] = ""
			}
			continue
		}
		if name == "" {
			continue
		}
		if strings.HasPrefix(line, ")") {
			out[name] = string(cls)
			name = ""
			continue
		}
		if f := strings.Fields(line); len(f) >= 3 && f[0] == ".param" {
			switch f[1] {
			case ".f32":
				cls = append(cls, 'f')
			case ".f64":
				cls = append(cls, 'd')
			case ".u64", ".s64", ".b64", ".u32", ".s32", ".b32", ".u16", ".s16", ".u8", ".s8":
				cls = append(cls, 'i')
			default:
				cls = append(cls, '?')
			}
		}
	}
	return out
}
