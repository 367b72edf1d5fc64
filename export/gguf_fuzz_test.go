package export

import (
	"bytes"
	"testing"
)

// FuzzParseGGUF: the test reader never panics or over-allocates on any
// input, and what it accepts is self-consistent (every tensor's data lies
// inside the file at an aligned offset). Seeds: a small valid file written
// by writeGGUF, and truncations of it.
func FuzzParseGGUF(f *testing.F) {
	var buf bytes.Buffer
	kvs := []kv{kvString("general.architecture", "llama"), kvU32("general.alignment", ggufAlignment),
		kvF32s("a.f", []float32{1, 2}), kvI32s("a.i", []int32{-1}), kvStrings("a.s", []string{"x", ""}), kvBool("a.b", true)}
	ts := []*ggufTensor{
		{name: "w", shape: []int{2, 32}, typ: ggmlQ8_0, read: func(int, []float32) error { return nil }},
		{name: "b", shape: []int{3}, typ: ggmlF32, read: func(int, []float32) error { return nil }},
		{name: "h", shape: []int{5}, typ: ggmlF16, read: func(int, []float32) error { return nil }},
	}
	if _, err := writeGGUF(&buf, kvs, ts, func() error { return nil }); err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	if _, err := parseGGUF(good); err != nil {
		f.Fatalf("the writer's own file: %v", err)
	}
	f.Add(good)
	for _, n := range []int{0, 4, 8, 24, 60, len(good) / 2, len(good) - 1} {
		f.Add(good[:n])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGGUF(b)
		if err != nil {
			return
		}
		for _, ti := range g.tensors {
			if ti.off%g.align != 0 || g.dataOff+ti.off+ti.bytes() > int64(len(b)) {
				t.Fatalf("accepted tensor %s outside the file or unaligned", ti.name)
			}
			if _, err := g.f32(ti.name); err != nil {
				t.Fatalf("accepted tensor %s does not decode: %v", ti.name, err)
			}
		}
	})
}
