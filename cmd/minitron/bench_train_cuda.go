//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"fmt"
	"io"

	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// runBenchTrainCUDA times device-resident training steps
// (gpu.Bench): tokens/s and model FLOPs utilisation on GPU 0.
func runBenchTrainCUDA(o *BenchTrainOptions, cfg *model.Config, w io.Writer) error {
	d, err := cuda.Open(0)
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := gpu.Bench(d, cfg, gpu.BenchConfig{Batch: o.Batch, Seq: o.Seq, Steps: o.Steps, KD: o.Loss == "kd", BF16: o.BF16,
		Recompute: o.Recompute, LogitChunk: o.LogitChunk, Offload: o.Offload, Seed: 1})
	if err != nil {
		return err
	}
	out := map[string]any{
		"tokens_per_s": r.TokensPerS, "best_ms": r.BestStepS * 1000, "mean_ms": r.MeanStepS * 1000,
		"tflop_per_s": r.TFLOPs, "mfu_tf32": r.MFUTF32, "mfu_bf16": r.MFUBF16,
		"device": r.Device, "cublas": d.BLASLibrary(), "params": r.Params, "loss": o.Loss, "bf16": o.BF16, "batch": o.Batch, "seq": o.Seq,
		"arch": string(cfg.Family), "layers": cfg.NumLayers, "hidden": cfg.HiddenSize, "heads": cfg.NumHeads,
		"kv_heads": cfg.NumKVHeads, "ffn": cfg.IntermediateSize, "vocab": cfg.VocabSize,
		"device_pool_peak_mb": float64(r.PeakBytes) / (1 << 20), "plan_mb": float64(r.PlanBytes) / (1 << 20),
		"recompute": o.Recompute, "logit_chunk": o.LogitChunk, "offload_optimizer": o.Offload,
	}
	if o.JSON {
		return printJSON(w, out)
	}
	prec := "f32/TF32"
	if o.BF16 {
		prec = "bf16 linear layers"
	}
	if o.Recompute {
		prec += ", recompute"
	}
	if o.Offload {
		prec += ", optimizer offloaded to the host"
	}
	if o.LogitChunk > 0 {
		prec += fmt.Sprintf(", logit chunk %d", o.LogitChunk)
	}
	fmt.Fprintf(w, "%s L%d H%d heads %d/%d F%d V%d, batch %d × seq %d, loss %s, %s, %d params, %s (cuBLAS %s)\n",
		cfg.Family, cfg.NumLayers, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.IntermediateSize, cfg.VocabSize,
		o.Batch, o.Seq, o.Loss, prec, r.Params, r.Device, d.BLASLibrary())
	mfu := "MFU n/a (device not in gpu.PeakTFLOPS's table)"
	if r.MFUTF32 > 0 {
		mfu = fmt.Sprintf("MFU %.1f%% of the TF32 peak, %.1f%% of the BF16 peak", 100*r.MFUTF32, 100*r.MFUBF16)
	}
	fmt.Fprintf(w, "tokens/s %.0f   best step %.1f ms   mean %.1f ms   %.2f TFLOP/s   %s\n",
		r.TokensPerS, r.BestStepS*1000, r.MeanStepS*1000, r.TFLOPs, mfu)
	fmt.Fprintf(w, "device pool peak %.1f MiB, minitron plan %.1f MiB (%+.1f%%)\n",
		float64(r.PeakBytes)/(1<<20), float64(r.PlanBytes)/(1<<20), 100*float64(r.PlanBytes-r.PeakBytes)/float64(r.PeakBytes))
	return nil
}
