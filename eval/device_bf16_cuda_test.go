//go:build minitron_cuda || minitron_cudaemu

package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// DeviceOptions.BF16: the device model keeps its linear weights in bf16
// only (about half the weight bytes of the f32 one), and eval nll's
// per-position NLL and logits and Score's log-probabilities stay within
// bf16 rounding of the CPU's: 3e-2·(1 + max |x|), gpu's bf16
// tolerance.
func TestBF16DeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Llama, 41)
	ids := randIDs(rand.New(rand.NewPCG(1, 1)), 19, 97)
	lg, err := m.Forward([][]int{ids}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := model.SequenceNLL(lg, ids)
	if err != nil {
		t.Fatal(err)
	}
	f32 := newDeviceLM(t, m, DeviceOptions{Rows: 1, Seq: len(ids)})
	if _, _, err := f32.SequenceNLL(ids, false); err != nil {
		t.Fatal(err)
	}
	dev := newDeviceLM(t, m, DeviceOptions{Rows: 1, Seq: len(ids), BF16: true})
	got, dlg, err := dev.SequenceNLL(ids, true)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.g.WeightsBF16() || f32.g.WeightsBF16() {
		t.Fatalf("WeightsBF16: BF16 device model %v, f32 one %v", dev.g.WeightsBF16(), f32.g.WeightsBF16())
	}
	if b, f := dev.g.WeightBytes(), f32.g.WeightBytes(); b >= f*3/4 {
		t.Errorf("weights on the device: %d bytes with BF16, %d without: want well under", b, f)
	}
	var dn, dl, scale, nscale float64
	for i := range want {
		dn, nscale = max(dn, math.Abs(got[i]-want[i])), max(nscale, math.Abs(want[i]))
	}
	for i := range lg {
		dl, scale = max(dl, math.Abs(float64(dlg[i]-lg[i]))), max(scale, math.Abs(float64(lg[i])))
	}
	t.Logf("bf16 weights: nll max |Δ| %.3g (max %.3g), logits max |Δ| %.3g (max |logit| %.3g)", dn, nscale, dl, scale)
	if len(got) != len(want) || dn > 3e-2*(1+nscale) || dl > 3e-2*(1+scale) {
		t.Errorf("nll max diff %.3g (%d vs %d values), logits max diff %.3g", dn, len(got), len(want), dl)
	}

	r := rand.New(rand.NewPCG(5, 6))
	reqs := make([]ScoreRequest, 4)
	for i := range reqs {
		reqs[i].Context = randIDs(r, 1+r.IntN(10), 97)
		for c := 0; c < 1+r.IntN(3); c++ {
			reqs[i].Continuations = append(reqs[i].Continuations, randIDs(r, 1+r.IntN(5), 97))
		}
	}
	ws, err := (&ModelLM{M: m}).Score(reqs)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := newDeviceLM(t, m, DeviceOptions{Rows: 3, BF16: true}).Score(reqs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range ws {
		for c := range ws[i] {
			if len(gs[i][c].LogProb) != len(ws[i][c].LogProb) {
				t.Fatalf("request %d cont %d: %d tokens, want %d", i, c, len(gs[i][c].LogProb), len(ws[i][c].LogProb))
			}
			for k, w := range ws[i][c].LogProb {
				worst = max(worst, math.Abs(gs[i][c].LogProb[k]-w)/(1+math.Abs(w)))
			}
		}
	}
	t.Logf("bf16 weights: Score max |Δ log p|/(1+|log p|) %.3g", worst)
	if worst > 3e-2 {
		t.Errorf("Score: max |Δ log p|/(1+|log p|) %.3g > 3e-2", worst)
	}
}
