package data

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type fixture struct {
	DType     string    `json:"dtype"`
	Sequences [][]int32 `json:"sequences"`
	Documents [][]int32 `json:"documents"`
}

func loadFixtures(t *testing.T) map[string]fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/idx/fixtures.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]fixture
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The committed fixtures were written by write_idx.py the way Megatron-LM's
// builder writes them; our reader must agree, including multi-sequence
// documents and empty sequences.
func TestReadMegatronFixtures(t *testing.T) {
	for name, want := range loadFixtures(t) {
		t.Run(name, func(t *testing.T) {
			ds, err := OpenIndexed(filepath.Join("testdata/idx", name))
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if ds.DType().String() != want.DType {
				t.Errorf("dtype %v, want %s", ds.DType(), want.DType)
			}
			checkDataset(t, ds, want.Sequences, want.Documents)
		})
	}
}

func checkDataset(t *testing.T, ds *IndexedDataset, seqs, docs [][]int32) {
	t.Helper()
	if ds.NumSequences() != len(seqs) || ds.NumDocuments() != len(docs) {
		t.Fatalf("counts %d seqs %d docs, want %d %d", ds.NumSequences(), ds.NumDocuments(), len(seqs), len(docs))
	}
	for i, w := range seqs {
		got, err := ds.Sequence(i)
		if err != nil {
			t.Fatal(err)
		}
		if !equalTokens(got, w) {
			t.Errorf("sequence %d = %v, want %v", i, got, w)
		}
	}
	for i, w := range docs {
		got, err := ds.Document(i)
		if err != nil {
			t.Fatal(err)
		}
		if !equalTokens(got, w) {
			t.Errorf("document %d = %v, want %v", i, got, w)
		}
	}
}

func equalTokens(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Writing the fixture's documents with our writer must give the same bytes as
// the Megatron-style Python writer for single-sequence documents: compare
// against a rewrite of megatron_i32 (all its documents are one sequence).
func TestWriterMatchesMegatronBytes(t *testing.T) {
	fx := loadFixtures(t)["megatron_i32"]
	prefix := filepath.Join(t.TempDir(), "ds")
	if err := WriteIndexed(prefix, DTypeInt32, fx.Documents); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".bin", ".idx"} {
		got, _ := os.ReadFile(prefix + ext)
		want, _ := os.ReadFile("testdata/idx/megatron_i32" + ext)
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the Megatron-style writer's:\n got %x\nwant %x", ext, got, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	docs := [][]int32{{1, 2, 3}, {}, {65000, 0, 17}, {4}}
	cases := []struct {
		name   string
		dtype  IndexDType
		docs   [][]int32
		reason string
	}{
		{"u16", DTypeUint16, docs, "small vocab stores 2 bytes per token"},
		{"i32", DTypeInt32, append(docs, []int32{255999, 70000}), "large vocab (Nemotron 256k) needs int32"},
		{"empty", DTypeUint16, nil, "a dataset with no documents is valid: S=0, doc_idx=[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "ds")
			if err := WriteIndexed(prefix, c.dtype, c.docs); err != nil {
				t.Fatal(err)
			}
			ds, err := OpenIndexed(prefix)
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			if ds.DType() != c.dtype {
				t.Errorf("dtype %v want %v (%s)", ds.DType(), c.dtype, c.reason)
			}
			checkDataset(t, ds, c.docs, c.docs)
			wantIdx := make([]int64, len(c.docs)+1)
			for i := range wantIdx {
				wantIdx[i] = int64(i)
			}
			if got := ds.DocumentIndices(); !reflect.DeepEqual(got, wantIdx) {
				t.Errorf("doc_idx %v, want %v (Megatron: D=S+1 for one-sequence documents)", got, wantIdx)
			}
			st, _ := os.Stat(prefix + ".bin")
			var n int64
			for _, d := range c.docs {
				n += int64(len(d))
			}
			if st.Size() != n*int64(c.dtype.Size()) || ds.NumTokens() != n {
				t.Errorf(".bin %d bytes, tokens %d; want %d tokens of %d bytes", st.Size(), ds.NumTokens(), n, c.dtype.Size())
			}
		})
	}
}

func TestWriterRejectsOutOfRangeToken(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "ds")
	err := WriteIndexed(prefix, DTypeUint16, [][]int32{{1, 70000}})
	if err == nil || !strings.Contains(err.Error(), "does not fit uint16") {
		t.Fatalf("err = %v, want a 'does not fit uint16' error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed write left files behind: %v", ents)
	}
}

func TestWriterAtomic(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "ds")
	w, err := NewIndexedWriter(prefix, DTypeUint16)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddDocument([]int32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(prefix + ".bin"); !os.IsNotExist(err) {
		t.Errorf(".bin visible before Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"ds.bin", "ds.idx"}) {
		t.Errorf("files after Close: %v, want ds.bin ds.idx only", names)
	}
}

// The Python reader in testdata/idx is written from the format description
// alone; it must read back what our writer produced.
func TestPythonReaderAgrees(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("python3 without numpy")
	}
	docs := [][]int32{{1, 2, 3, 256}, {}, {65535, 256}, {7, 7, 7, 7, 7, 256}}
	for _, dt := range []IndexDType{DTypeUint16, DTypeInt32} {
		t.Run(dt.String(), func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "ds")
			if err := WriteIndexed(prefix, dt, docs); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(py, "testdata/idx/read_idx.py", prefix).Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("read_idx.py: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var got struct {
				DType     string    `json:"dtype"`
				DocIdx    []int64   `json:"doc_idx"`
				Documents [][]int32 `json:"documents"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if got.DType != dt.String() {
				t.Errorf("python dtype %s, want %v", got.DType, dt)
			}
			if !reflect.DeepEqual(got.DocIdx, []int64{0, 1, 2, 3, 4}) {
				t.Errorf("python doc_idx %v", got.DocIdx)
			}
			if len(got.Documents) != len(docs) {
				t.Fatalf("python read %d documents, want %d", len(got.Documents), len(docs))
			}
			for i := range docs {
				if !equalTokens(got.Documents[i], docs[i]) {
					t.Errorf("document %d: python %v, want %v", i, got.Documents[i], docs[i])
				}
			}
		})
	}
}

// corruptCase mutates a valid .idx/.bin pair.
type corruptCase struct {
	name   string
	mutate func(idx, bin []byte) ([]byte, []byte)
	want   string // fragment of the error
	reason string
}

func putU64(b []byte, off int, v uint64) []byte {
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint64(b[off:], v)
	return b
}

func TestOpenIndexedCorrupt(t *testing.T) {
	// Three documents of 2, 3, 1 tokens, uint16: S=3, D=4.
	// Layout: header 34, lengths 34..46, pointers 46..70, doc_idx 70..102.
	cases := []corruptCase{
		{"bad magic", func(i, b []byte) ([]byte, []byte) {
			i = append([]byte(nil), i...)
			i[0] = 'X'
			return i, b
		}, "bad magic", "not a Megatron file"},
		{"short header", func(i, b []byte) ([]byte, []byte) { return i[:20], b }, "shorter than the 34-byte header", "truncated in the header"},
		{"empty idx", func(i, b []byte) ([]byte, []byte) { return nil, b }, "shorter than the 34-byte header", "zero-byte file"},
		{"wrong version", func(i, b []byte) ([]byte, []byte) { return putU64(i, 9, 2), b }, "unsupported version 2", "only version 1 exists"},
		{"unknown dtype", func(i, b []byte) ([]byte, []byte) {
			i = append([]byte(nil), i...)
			i[17] = 9
			return i, b
		}, "unknown dtype code 9", "codes are 1..8"},
		{"float dtype", func(i, b []byte) ([]byte, []byte) {
			i = append([]byte(nil), i...)
			i[17] = 7
			return i, b
		}, "float32 cannot hold token ids", "valid Megatron code but not tokens"},
		{"sequence count exceeds file", func(i, b []byte) ([]byte, []byte) { return putU64(i, 18, 1<<40), b }, "exceed the file size", "count far beyond the file"},
		{"sequence count overflow", func(i, b []byte) ([]byte, []byte) { return putU64(i, 18, 1<<63), b }, "exceed the file size", "12*S overflows uint64"},
		{"doc count exceeds file", func(i, b []byte) ([]byte, []byte) { return putU64(i, 26, 5), b }, "exceed the file size", "one more doc index than stored"},
		{"trailing bytes", func(i, b []byte) ([]byte, []byte) { return append(append([]byte(nil), i...), 1, 2), b }, "2 trailing bytes", "garbage after doc_idx"},
		{"truncated bin", func(i, b []byte) ([]byte, []byte) { return i, b[:len(b)-2] }, "truncated .bin", "last sequence runs past the end"},
		{"bin too long", func(i, b []byte) ([]byte, []byte) { return i, append(append([]byte(nil), b...), 0, 0) }, "but the index describes", "extra tokens nobody indexes"},
		{"non-monotone pointers", func(i, b []byte) ([]byte, []byte) { return putU64(i, 46+8, 0), b }, "not monotone or overlapping", "sequence 1 points back to 0"},
		{"negative length", func(i, b []byte) ([]byte, []byte) {
			i = append([]byte(nil), i...)
			binary.LittleEndian.PutUint32(i[34:], 0xffffffff)
			return i, b
		}, "negative length", "length -1"},
		{"doc idx not starting at 0", func(i, b []byte) ([]byte, []byte) { return putU64(i, 70, 1), b }, "want 0", "Megatron starts doc_idx at 0"},
		{"doc idx decreasing", func(i, b []byte) ([]byte, []byte) { return putU64(i, 70+16, 0), b }, "not monotone", "doc_idx 0,1,0,3"},
		{"doc idx beyond S", func(i, b []byte) ([]byte, []byte) { return putU64(i, 70+24, 9), b }, "not monotone within [0,3]", "points past the last sequence"},
		{"doc idx not ending at S", func(i, b []byte) ([]byte, []byte) { return putU64(i, 70+24, 2), b }, "want the sequence count 3", "last sequence belongs to no document"},
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := WriteIndexed(good, DTypeUint16, [][]int32{{1, 2}, {3, 4, 5}, {6}}); err != nil {
		t.Fatal(err)
	}
	idx, _ := os.ReadFile(good + ".idx")
	bin, _ := os.ReadFile(good + ".bin")
	if len(idx) != 102 {
		t.Fatalf("fixture .idx is %d bytes, the offsets below assume 102", len(idx))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			i, b := c.mutate(idx, bin)
			prefix := filepath.Join(t.TempDir(), "bad")
			os.WriteFile(prefix+".idx", i, 0o644)
			os.WriteFile(prefix+".bin", b, 0o644)
			ds, err := OpenIndexed(prefix)
			if err == nil {
				ds.Close()
				t.Fatalf("opened a corrupt dataset (%s)", c.reason)
			}
			if !errors.Is(err, ErrCorruptIndex) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v\nwant ErrCorruptIndex containing %q (%s)", err, c.want, c.reason)
			}
			if !strings.Contains(err.Error(), prefix) {
				t.Errorf("err %q does not name the file", err)
			}
		})
	}
}

func TestOpenIndexedMissingFile(t *testing.T) {
	_, err := OpenIndexed(filepath.Join(t.TempDir(), "nothing"))
	if err == nil || !strings.Contains(err.Error(), "nothing.idx") {
		t.Fatalf("err = %v, want it to name nothing.idx", err)
	}
}

// Random .idx bytes must give an error or a dataset whose every sequence and
// document can be read, never a panic.
func FuzzReadIndex(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "seed")
	if err := WriteIndexed(good, DTypeUint16, [][]int32{{1, 2}, {3, 4, 5}, {6}}); err != nil {
		f.Fatal(err)
	}
	idx, _ := os.ReadFile(good + ".idx")
	bin, _ := os.ReadFile(good + ".bin")
	f.Add(idx, bin)
	f.Add(idx[:40], bin)
	f.Add([]byte("MMIDIDX\x00\x00"), []byte{})
	for _, name := range []string{"megatron_u16", "megatron_i32"} {
		i, _ := os.ReadFile("testdata/idx/" + name + ".idx")
		b, _ := os.ReadFile("testdata/idx/" + name + ".bin")
		f.Add(i, b)
	}
	f.Fuzz(func(t *testing.T, idx, bin []byte) {
		prefix := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(prefix+".idx", idx, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(prefix+".bin", bin, 0o644); err != nil {
			t.Fatal(err)
		}
		ds, err := OpenIndexed(prefix)
		if err != nil {
			return
		}
		defer ds.Close()
		for i := 0; i < ds.NumSequences(); i++ {
			if _, err := ds.Sequence(i); err != nil && ds.DType() != DTypeInt64 {
				t.Fatalf("validated dataset cannot read sequence %d: %v", i, err)
			}
		}
		for i := 0; i < ds.NumDocuments(); i++ {
			ds.Document(i)
		}
	})
}
