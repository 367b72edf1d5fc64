//go:build minitron_cuda || minitron_cudaemu

package eval

import (
	"math"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// A NaN weight made the device's greedy arg-max token 0 at every step
// (and the sampled path drew from NaN probabilities) with no error; the
// CPU's Generate reports the tensor, and so does Decode now.
func TestDecodeNonFiniteDeviceCUDA(t *testing.T) {
	cfg, err := model.SyntheticConfig(model.Llama, 2, 48, 4, 2, 96, 97)
	if err != nil {
		t.Fatal(err)
	}
	src, err := model.LoadMem(model.NewRandomSource(cfg, model.F32, 3))
	if err != nil {
		t.Fatal(err)
	}
	const name = "model.layers.1.mlp.down_proj.weight"
	w, info, _ := src.Get(name)
	w[7] = float32(math.NaN())
	src.SetF32(name, info.Shape, w)
	m, err := model.New(cfg, src, model.Options{Weights: model.WeightsResident})
	if err != nil {
		t.Fatal(err)
	}
	dev := newDeviceLM(t, m, DeviceOptions{})
	for _, opt := range []model.GenerateOptions{
		{MaxNewTokens: 4, EOS: []int{}},
		{MaxNewTokens: 4, EOS: []int{}, Temperature: 0.8, Seed: 1},
	} {
		_, err := dev.Decode([]int{1, 5, 9}, opt)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("temperature %v: got %v; want the tensor %s named", opt.Temperature, err, name)
		}
	}
}
