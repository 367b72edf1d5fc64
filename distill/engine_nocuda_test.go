//go:build !minitron_cuda && !minitron_cudaemu

package distill

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

func TestRunDeviceWithoutCUDA(t *testing.T) {
	cfg := tinyConfig(t, "llama", 1, 16, 2, 1, 32, 32)
	src := corpus(4, 5, 100, 32)
	c := Config{StudentConfig: cfg, RandomInit: true, Train: sampler(t, src, 8, 3), SeqLen: 8, MicroBatch: 1, Steps: 1, Device: "cuda"}
	if _, err := Run(context.Background(), c); !errors.Is(err, cuda.ErrNotBuilt) {
		t.Fatalf("--device cuda in a CPU build: %v, want cuda.ErrNotBuilt", err)
	}
	c.Device, c.BF16 = "", true
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "BF16 needs Device cuda") {
		t.Fatalf("--bf16 on the CPU: %v", err)
	}
	c.BF16, c.Recompute = false, true
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "Recompute needs Device cuda") {
		t.Fatalf("--recompute on the CPU: %v", err)
	}
	c.Recompute, c.Offload = false, true
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "Offload needs Device cuda and BF16") {
		t.Fatalf("--offload-optimizer on the CPU: %v", err)
	}
	c.Offload, c.LogitChunk = false, -1
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "logit chunk -1") {
		t.Fatalf("a negative logit chunk: %v", err)
	}
	c.Device, c.BF16, c.LogitChunk = "tpu", false, 0
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), `device "tpu": want cpu or cuda`) {
		t.Fatalf("--device tpu: %v", err)
	}
}
