package importance

import (
	"context"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// BF16 without the device is refused, not ignored.
func TestComputeBF16NeedsDevice(t *testing.T) {
	cfg, err := model.SyntheticConfig(model.Llama, 2, 32, 4, 2, 64, 97)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, model.NewRandomSource(cfg, model.F32, 1), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = Compute(context.Background(), m, [][]int{{1, 2, 3, 4}, {5, 6, 7, 8}}, Options{Aggregation: DefaultAggregation, BF16: true})
	if err == nil || !strings.Contains(err.Error(), "BF16 weights need Device cuda") {
		t.Errorf("BF16 on the CPU: error %v, want one naming the options (BF16, Device cuda)", err)
	}
}
