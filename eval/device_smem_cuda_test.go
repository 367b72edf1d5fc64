//go:build minitron_cuda || minitron_cudaemu

package eval

import (
	"testing"

	"github.com/minitron-dev/minitron/model"
)

// Generate's cache is refused (so that decoding falls back to full passes)
// beyond the reference attention kernel's key limit, static shared memory
// included: at the largest length whose dynamic shared memory alone fits,
// a GPU would refuse the kernel's launch in the middle of decoding. At the
// limit itself the cache is made.
func TestGenerateCacheSmemLimitDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Llama, 3)
	a := newDeviceLM(t, m, DeviceOptions{Rows: 1})
	if err := a.ensure(4); err != nil {
		t.Fatal(err)
	}
	hd := m.Cfg.HeadDim
	limit := a.d.AttentionMaxTk(hd)
	if dynamicOnly := a.d.MaxSmem/4 - hd; dynamicOnly > limit {
		if kc, err := a.genCache(dynamicOnly); err == nil {
			t.Errorf("genCache(%d) made a %d-position cache; the attention kernel takes at most %d keys", dynamicOnly, kc.Cap, limit)
		}
	}
	if _, err := a.genCache(limit); err != nil {
		t.Errorf("genCache(%d) at the attention kernel's limit: %v", limit, err)
	}
}

// A closed DeviceLM names no device (Device dereferenced the released
// device and panicked) and refuses work with an error.
func TestClosedDeviceCUDA(t *testing.T) {
	m := tinyDeviceModel(t, model.Llama, 4)
	a := newDeviceLM(t, m, DeviceOptions{Rows: 1})
	if name, _ := a.Device(); name == "" {
		t.Errorf("an open DeviceLM names no device")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if name, blas := a.Device(); name != "" || blas != "" {
		t.Errorf("closed DeviceLM: Device() = %q, %q", name, blas)
	}
	if _, _, err := a.SequenceNLL([]int{1, 2, 3}, false); err == nil {
		t.Errorf("SequenceNLL on a closed DeviceLM: no error")
	}
}
