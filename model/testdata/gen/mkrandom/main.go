// Command mkrandom writes a random-init Hugging Face checkpoint (streamed, so
// it can be larger than RAM), for the streaming-memory demo of the forward
// pass:
//
//	go run ./model/testdata/gen/mkrandom -out /tmp/big -arch nemotron -layers 24 \
//	    -hidden 2048 -heads 16 -kv-heads 8 -ffn 8192 -vocab 32000 -dtype BF16
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/minitron-dev/minitron/model"
)

func main() {
	out := flag.String("out", "", "output directory")
	arch := flag.String("arch", "nemotron", "nemotron, llama or mistral")
	layers := flag.Int("layers", 24, "layers")
	hidden := flag.Int("hidden", 2048, "hidden size")
	heads := flag.Int("heads", 16, "heads")
	kv := flag.Int("kv-heads", 8, "KV heads")
	ffn := flag.Int("ffn", 8192, "MLP size")
	vocab := flag.Int("vocab", 32000, "vocabulary")
	dtype := flag.String("dtype", "BF16", "F32, BF16 or F16")
	shard := flag.Int64("shard-bytes", 1<<30, "shard size (0: one file)")
	flag.Parse()
	if err := run(*out, *arch, *layers, *hidden, *heads, *kv, *ffn, *vocab, *dtype, *shard); err != nil {
		fmt.Fprintln(os.Stderr, "mkrandom:", err)
		os.Exit(1)
	}
}

func run(out, arch string, layers, hidden, heads, kv, ffn, vocab int, dtype string, shard int64) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	cfg, err := model.SyntheticConfig(model.Family(arch), layers, hidden, heads, kv, ffn, vocab)
	if err != nil {
		return err
	}
	dt, err := model.ParseDType(dtype)
	if err != nil {
		return err
	}
	if err := model.RandomCheckpoint(out, cfg, dt, 1, shard); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %.2f GB as %s, %.2f GB as f32\n", out,
		float64(model.F32WeightBytes(cfg))/4*float64(dt.Size())/1e9, dt, float64(model.F32WeightBytes(cfg))/1e9)
	return nil
}
