package main

import "github.com/spf13/cobra"

func init() { register(newTrainCmd) }

func newTrainCmd() *cobra.Command {
	o := &TrainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train or fine-tune a model with cross-entropy (same loop as distill)",
		Long: `Train a model on a token stream with cross-entropy on the next token: fine-tune a checkpoint
(e.g. the paper's teacher correction before distillation) or train an architecture from random
initialisation (--init random; --model is then a config.json or a checkpoint directory whose
config is used). Optimizer, schedule, checkpoints, metrics, --resume and --config work as in
'minitron distill', and so does --device cuda (a binary built with -tags minitron_cuda: each step
on GPU 0).`,
		Example: `  minitron train --model ./teacher --data data/corpus_train --seq-len 256 --micro-batch 8 --steps 200 --lr 1e-4 --out runs/corrected
  minitron train --model arch/config.json --init random --data data/corpus_train --seq-len 256 --micro-batch 16 --tokens 20000000 --lr 1e-3 --warmup 100 --out runs/scratch
  minitron train --model ./teacher --data data/corpus_train --seq-len 1024 --micro-batch 8 --steps 200 --device cuda --out runs/corrected-gpu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runTraining(cmd, o, false) },
	}
	addTrainFlags(cmd.Flags(), o, false)
	return cmd
}
