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
	r, err := gpu.Bench(d, cfg, o.Batch, o.Seq, o.Steps, o.Loss == "kd", o.BF16, 1)
	if err != nil {
		return err
	}
	out := map[string]any{
		"tokens_per_s": r.TokensPerS, "best_ms": r.BestStepS * 1000, "mean_ms": r.MeanStepS * 1000,
		"tflop_per_s": r.TFLOPs, "mfu_tf32": r.MFUTF32, "mfu_bf16": r.MFUBF16,
		"device": r.Device, "cublas": d.BLASLibrary(), "params": r.Params, "loss": o.Loss, "bf16": o.BF16, "batch": o.Batch, "seq": o.Seq,
		"arch": string(cfg.Family), "layers": cfg.NumLayers, "hidden": cfg.HiddenSize, "heads": cfg.NumHeads,
		"kv_heads": cfg.NumKVHeads, "ffn": cfg.IntermediateSize, "vocab": cfg.VocabSize,
		"device_pool_peak_mb": float64(d.Pool().Peak) / (1 << 20),
	}
	if o.JSON {
		return printJSON(w, out)
	}
	prec := "f32/TF32"
	if o.BF16 {
		prec = "bf16 linear layers"
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
	return nil
}
