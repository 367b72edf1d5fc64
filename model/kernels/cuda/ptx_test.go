package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// These run in every build (no GPU, no nvcc): they keep the committed PTX
// in step with the CUDA sources and with the kernels the Go side launches.

// TestPTXFresh fails when a csrc file changed after the last `make ptx`
// (which records the sources' sha256 sums in ptx/csrc.sha256).
func TestPTXFresh(t *testing.T) {
	sums, err := os.ReadFile("ptx/csrc.sha256")
	if err != nil {
		t.Fatalf("%v (run make ptx)", err)
	}
	recorded := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("ptx/csrc.sha256: bad line %q", line)
		}
		recorded[f[1]] = f[0]
	}
	files, _ := filepath.Glob("csrc/*")
	if len(files) == 0 {
		t.Fatal("no csrc files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if got := hex.EncodeToString(h[:]); recorded[f] != got {
			t.Errorf("%s changed since the PTX was built (run make ptx and commit model/kernels/cuda/ptx)", f)
		}
		delete(recorded, f)
	}
	for f := range recorded {
		t.Errorf("ptx/csrc.sha256 names %s, which no longer exists (run make ptx)", f)
	}
}

// TestLaunchedKernelsExist checks every kernel name d.launch is given in the Go
// sources against the .entry names of the committed PTX, and that every
// .cu file has its .ptx.
func TestLaunchedKernelsExist(t *testing.T) {
	var entries []string
	ptxs, _ := filepath.Glob("ptx/*.ptx")
	for _, p := range ptxs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), ".target sm_80") {
			t.Errorf("%s is not PTX for compute_80", p)
		}
		entries = append(entries, ptxEntries(string(b))...)
	}
	cus, _ := filepath.Glob("csrc/*.cu")
	for _, c := range cus {
		p := "ptx/" + strings.TrimSuffix(filepath.Base(c), ".cu") + ".ptx"
		if !slices.Contains(ptxs, p) {
			t.Errorf("%s has no %s (run make ptx)", c, p)
		}
	}
	re := regexp.MustCompile(`launch\("([a-z0-9_]+)"`)
	srcs, _ := filepath.Glob("*.go")
	launched := 0
	for _, f := range srcs {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			launched++
			if !slices.Contains(entries, m[1]) {
				t.Errorf("%s launches %s, which no PTX file defines", f, m[1])
			}
		}
	}
	if launched < 20 {
		t.Errorf("found only %d launches: the pattern no longer matches the Go sources", launched)
	}
}

func TestPTXEntries(t *testing.T) {
	src := "//\n.visible .entry foo(\n\t.param .u64 a\n)\n.func bar(\n  .visible .entry baz_2(\n.entry hidden(\n"
	if got, want := ptxEntries(src), []string{"foo", "baz_2"}; !slices.Equal(got, want) {
		t.Errorf("ptxEntries = %v, want %v", got, want)
	}
}

// Every kernel parameter must be a scalar that fits gorgonia.org/cu's
// 8-byte launch slots, with no float64 (the Go side packs float32 only),
// and within the CPU emulator's limits (≤ 20 integer, ≤ 8 float).
func TestKernelParams(t *testing.T) {
	ptxs, _ := filepath.Glob("ptx/*.ptx")
	n := 0
	for _, p := range ptxs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for name, cls := range ptxParamClasses(string(b)) {
			n++
			if cls == "" || strings.ContainsAny(cls, "?d") {
				t.Errorf("%s: kernel %s has parameter classes %q", p, name, cls)
			}
			if strings.Count(cls, "i") > 20 || strings.Count(cls, "f") > 8 {
				t.Errorf("%s: kernel %s has %q: more than the emulator's 20 integer / 8 float parameters", p, name, cls)
			}
		}
	}
	if n < 30 {
		t.Errorf("found %d kernels", n)
	}
	src := ".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .f32 k_param_1,\n\t.param .u32 k_param_2\n)\n{\n}\n"
	if got := ptxParamClasses(src)["k"]; got != "ifi" {
		t.Errorf("ptxParamClasses = %q, want ifi", got)
	}
}
