package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// refCase is an expected.json: a reference forward pass of one sequence.
type refCase struct {
	IDs     []int       `json:"ids"`
	Logits  [][]float32 `json:"logits"`
	NLL     []float64   `json:"nll"`
	MeanNLL float64     `json:"mean_nll"`
	// Optional extras written by testdata/gen/make_cases.py.
	Batch [][]int `json:"batch,omitempty"`
}

func readRef(t *testing.T, dir string) *refCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rc refCase
	if err := json.Unmarshal(b, &rc); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return &rc
}

// checkCase loads dir in the given weight mode and compares logits and NLL
// with its expected.json.
func checkCase(t *testing.T, dir string, mode WeightMode, tol float64) {
	t.Helper()
	rc := readRef(t, dir)
	m, err := Load(dir, Options{Weights: mode})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	logits, err := m.Forward([][]int{rc.IDs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	V := m.Cfg.VocabSize
	if len(rc.Logits) != len(rc.IDs) || len(logits) != len(rc.IDs)*V {
		t.Fatalf("%s: shape mismatch: %d logits rows, want %d×%d", dir, len(rc.Logits), len(rc.IDs), V)
	}
	var worst float64
	for i, row := range rc.Logits {
		for j, want := range row {
			worst = math.Max(worst, math.Abs(float64(logits[i*V+j]-want)))
		}
	}
	t.Logf("%s (%v): max |dlogit| = %.3g", filepath.Base(dir), mode, worst)
	if worst > tol {
		t.Errorf("%s (%v): logits differ from the reference by %.3g (tolerance %g)", dir, mode, worst, tol)
	}
	nll, mean, err := SequenceNLL(logits, rc.IDs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rc.NLL {
		if math.Abs(nll[i]-rc.NLL[i]) > tol {
			t.Errorf("%s: nll[%d] = %v, want %v", dir, i, nll[i], rc.NLL[i])
		}
	}
	if math.Abs(mean-rc.MeanNLL) > tol {
		t.Errorf("%s: mean nll %v, want %v", dir, mean, rc.MeanNLL)
	}
}

func TestGoldenForward(t *testing.T) {
	for _, name := range []string{"nemotron-tiny", "llama-tiny", "mistral-tiny"} {
		for _, mode := range []WeightMode{WeightsResident, WeightsStreaming} {
			t.Run(name+"/"+mode.String(), func(t *testing.T) {
				checkCase(t, goldenDir(name), mode, 1e-4)
			})
		}
	}
}

// caseDirs are the references made by testdata/gen/make_cases.py.
var caseDirs = []string{"nemotron-bf16", "nemotron-headdim-sharded", "llama-tied-llama3", "llama-linear-bias-f16", "mistral-window",
	"qwen2-gqa", "qwen2-tied-bf16-sharded", "qwen2-window", "qwen3-headdim", "qwen3-tied-bf16-sharded", "qwen3-bias-window"}

func caseDir(name string) string { return filepath.Join("testdata", "cases", name) }

func TestReferenceCases(t *testing.T) {
	for _, name := range caseDirs {
		for _, mode := range []WeightMode{WeightsResident, WeightsStreaming} {
			t.Run(name+"/"+mode.String(), func(t *testing.T) {
				checkCase(t, caseDir(name), mode, 1e-4)
			})
		}
	}
}

type batchRef struct {
	Reason      string        `json:"reason"`
	Batch       [][]int       `json:"batch"`
	BatchLogits [][][]float32 `json:"batch_logits"`
}

// A batch of two sequences matches the reference and matches running each
// sequence alone (no cross-talk between sequences).
func TestBatchMatchesSingle(t *testing.T) {
	for _, name := range caseDirs {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(caseDir(name), "expected.json"))
			if err != nil {
				t.Fatal(err)
			}
			var br batchRef
			if err := json.Unmarshal(b, &br); err != nil {
				t.Fatal(err)
			}
			m, err := Load(caseDir(name), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			V := m.Cfg.VocabSize
			got, err := m.Forward(br.Batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			T := len(br.Batch[0])
			for s := range br.Batch {
				single, err := m.Forward(br.Batch[s:s+1], nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < T*V; i++ {
					g := got[s*T*V+i]
					if d := math.Abs(float64(g - single[i])); d > 1e-5 {
						t.Fatalf("%s: sequence %d logit %d: batch %v vs alone %v", br.Reason, s, i, g, single[i])
					}
					if d := math.Abs(float64(g - br.BatchLogits[s][i/V][i%V])); d > 1e-4 {
						t.Fatalf("%s: sequence %d logit %d: %v, reference %v", br.Reason, s, i, g, br.BatchLogits[s][i/V][i%V])
					}
				}
			}
		})
	}
}

// TokenNLL (vocabulary blocks, online log-sum-exp) equals SequenceNLL on the
// full logits, with blocks small enough that every case needs several.
func TestTokenNLLMatchesFullLogits(t *testing.T) {
	old := nllChunkBytes
	nllChunkBytes = 4 * 40 * 37 // 37-column blocks at 40 rows: ragged last block
	defer func() { nllChunkBytes = old }()
	for _, name := range caseDirs {
		for _, mode := range []WeightMode{WeightsResident, WeightsStreaming} {
			rc := readRef(t, caseDir(name))
			m, err := Load(caseDir(name), Options{Weights: mode})
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.TokenNLL(rc.Batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			full, err := m.Forward(rc.Batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			T, V := len(rc.Batch[0]), m.Cfg.VocabSize
			for b := range rc.Batch {
				want, _, _ := SequenceNLL(full[b*T*V:(b+1)*T*V], rc.Batch[b])
				for i := range want {
					if math.Abs(got[b][i]-want[i]) > 1e-5 {
						t.Fatalf("%s %v seq %d pos %d: TokenNLL %v, from logits %v", name, mode, b, i, got[b][i], want[i])
					}
				}
			}
			for i, v := range rc.NLL {
				if math.Abs(got[0][i]-v) > 1e-4 {
					t.Fatalf("%s: nll[%d] %v, reference %v", name, i, got[0][i], v)
				}
			}
			m.Close()
		}
	}
}
