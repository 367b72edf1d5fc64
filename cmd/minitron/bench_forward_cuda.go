//go:build minitron_cuda || minitron_cudaemu

package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/minitron-dev/minitron/device"
	"github.com/minitron-dev/minitron/gpu"
	"github.com/minitron-dev/minitron/model"
	"github.com/minitron-dev/minitron/model/kernels"
	"github.com/minitron-dev/minitron/model/kernels/cuda"
)

// runBenchForwardCUDA times gpu's inference forward pass (Infer, all
// logits) on GPU 0 at the bench shape: tokens/s and GFLOP/s (counted as
// model.ForwardFLOPs, like the CPU bench) at the best of --iters passes.
func runBenchForwardCUDA(o *BenchForwardOptions, w io.Writer) error {
	if o.Batch <= 0 || o.Seq <= 0 || o.Iters <= 0 {
		return fmt.Errorf("bench: batch, seq and iters must be positive")
	}
	// --weights and --threads apply to the host side here (how the
	// checkpoint is read for the upload), as on the CPU: checked, not ignored.
	if _, err := model.ParseWeightMode(o.Weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	if o.Threads > 0 {
		defer kernels.SetWorkers(kernels.SetWorkers(o.Threads))
	}
	var cfg *model.Config
	var src model.TensorSource
	if o.Model != "" {
		// The weights are read once onto the device: with --weights auto,
		// map the file rather than keep an f32 copy in RAM.
		m, err := loadModel(o.Model, deviceWeights(o.Weights, device.CUDA))
		if err != nil {
			return err
		}
		defer m.Close()
		cfg, src = m.Cfg, m.Source()
	} else {
		var err error
		if cfg, err = o.config(); err != nil {
			return err
		}
		src = model.NewRandomSource(cfg, model.F32, 1)
	}
	d, err := cuda.Open(0)
	if err != nil {
		return fmt.Errorf("--device cuda: %w", err)
	}
	defer d.Close()
	if o.NoTF32 {
		if err := d.SetTF32(false); err != nil {
			return fmt.Errorf("--device cuda: %w", err)
		}
	}
	g, err := gpu.NewModelOpts(d, cfg, src, gpu.Options{Batch: o.Batch, Seq: o.Seq, WeightsBF16: o.BF16})
	if err != nil {
		return fmt.Errorf("--device cuda: %w", err)
	}
	defer g.Free()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([][]int32, o.Batch)
	for b := range ids {
		ids[b] = make([]int32, o.Seq)
		for t := range ids[b] {
			ids[b][t] = int32(rng.IntN(cfg.VocabSize))
		}
	}
	if err := g.SetInputs(ids, nil); err != nil {
		return err
	}
	pass := func() (time.Duration, error) {
		t0 := time.Now()
		err := g.Infer(nil)
		if err == nil {
			err = d.Sync() // the launches are asynchronous: time the work
		}
		return time.Since(t0), err
	}
	for i := 0; i < o.Warmup; i++ {
		if _, err := pass(); err != nil {
			return fmt.Errorf("warm-up pass %d: %w", i, err)
		}
	}
	var best, total time.Duration
	for i := 0; i < o.Iters; i++ {
		dt, err := pass()
		if err != nil {
			return err
		}
		if best == 0 || dt < best {
			best = dt
		}
		total += dt
	}
	flops := model.ForwardFLOPs(cfg, o.Batch, o.Seq)
	tokS, gflops := float64(o.Batch*o.Seq)/best.Seconds(), flops/best.Seconds()/1e9
	weights, prec := "device f32", "TF32"
	if o.NoTF32 {
		prec = "full f32"
	}
	if o.BF16 {
		weights, prec = "device bf16 (matrices)", "bf16"
	}
	out := map[string]any{
		"tokens_per_s": tokS, "gflops": gflops, "best_ms": float64(best.Microseconds()) / 1000,
		"mean_ms": float64(total.Microseconds()) / 1000 / float64(o.Iters), "batch": o.Batch, "seq": o.Seq, "iters": o.Iters,
		"device": d.Name, "cublas": d.BLASLibrary(), "weights": weights, "tf32": !o.NoTF32, "device_pool_peak_mb": float64(d.Pool().Peak) / (1 << 20),
		"f32_weights_mb": float64(model.F32WeightBytes(cfg)) / (1 << 20), "device_weights_mb": float64(g.WeightBytes()) / (1 << 20),
		"bf16": o.BF16,
		"arch": string(cfg.Family), "layers": cfg.NumLayers, "hidden": cfg.HiddenSize, "heads": cfg.NumHeads,
		"kv_heads": cfg.NumKVHeads, "ffn": cfg.IntermediateSize, "vocab": cfg.VocabSize,
	}
	tf32, bf16 := gpu.PeakTFLOPS(d.Name)
	peak, key, peakName := tf32, "mfu_tf32", "TF32"
	if o.BF16 {
		peak, key, peakName = bf16, "mfu_bf16", "BF16"
	}
	if peak > 0 {
		out[key] = gflops / 1e3 / peak
	}
	if o.JSON {
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "%s L%d H%d heads %d/%d F%d V%d, batch %d × seq %d, %s weights (%s products) on %s (cuBLAS %s)\n",
		cfg.Family, cfg.NumLayers, cfg.HiddenSize, cfg.NumHeads, cfg.NumKVHeads, cfg.IntermediateSize, cfg.VocabSize,
		o.Batch, o.Seq, weights, prec, d.Name, d.BLASLibrary())
	mfu := "MFU n/a (device not in gpu.PeakTFLOPS's table)"
	if peak > 0 {
		mfu = fmt.Sprintf("%.1f%% of the %s peak", 100*out[key].(float64), peakName)
	}
	fmt.Fprintf(w, "tokens/s %.0f   GFLOP/s %.1f (%s)   best %.2f ms   mean %.2f ms   device pool peak %.0f MiB (weights on the device %.0f MiB; all f32 %.0f MiB)\n",
		tokS, gflops, mfu, out["best_ms"], out["mean_ms"], out["device_pool_peak_mb"], out["device_weights_mb"], out["f32_weights_mb"])
	return nil
}
