#!/bin/sh
# Reproduces eval/testdata/demo/{report.md,report.json,loss_curves.png}:
# a small llama teacher trained on Newton's Opticks (ships with Go), a student
# pruned from it by importance and distilled, the same student architecture
# trained from scratch, then `minitron eval tasks` (side-by-side report) and
# `minitron eval plot` (loss curves). About 15 minutes on 2 busy cores.
#
#   sh eval/testdata/demo/run_demo.sh [WORKDIR]     (from the repository root;
#   DEMO_OUT=dir writes the report and PNG there instead)
set -eu
ROOT=$(pwd)
W=${1:-/tmp/minitron-demo}
MT="$W/minitron"
FIX="$ROOT/eval/testdata/tasks"
OUT=${DEMO_OUT:-"$ROOT/eval/testdata/demo"}
mkdir -p "$W"
go build -o "$MT" ./cmd/minitron
cd "$W"

"$MT" tokenizer train --builtin opticks --vocab-size 2048 --out tok
"$MT" data prepare --builtin opticks --tokenizer tok --out data/opticks --split 0.9 --max-doc-bytes 8192
# HellaSwag-format next-line task and held-out text from the validation split.
(cd "$ROOT" && go run ./eval/testdata/demo/mktask "$W/data/opticks_val" "$W/tok" 300 "$W/opticks_nextline.jsonl" "$W/opticks_val.txt")

cp "$ROOT/eval/testdata/demo/teacher_config.json" teacher_config.json
"$MT" train --model teacher_config.json --init random --data data/opticks_train --val data/opticks_val \
  --seq-len 128 --micro-batch 8 --steps 400 --lr 1e-3 --warmup 40 --val-every 25 --out runs/teacher
T=runs/teacher/checkpoints/step-0000400

"$MT" importance --model "$T" --data data/opticks --samples 64 --seq-len 128 --batch 4 --out scores.json
"$MT" prune --model "$T" --scores scores.json --hidden 96 --ffn 192 --out student-pruned
"$MT" distill --teacher "$T" --student student-pruned --data data/opticks_train --val data/opticks_val \
  --seq-len 128 --micro-batch 8 --steps 200 --lr 5e-4 --warmup 20 --val-every 25 --out runs/student-distilled
"$MT" train --model student-pruned/config.json --init random --data data/opticks_train --val data/opticks_val \
  --seq-len 128 --micro-batch 8 --steps 200 --lr 1e-3 --warmup 20 --val-every 25 --out runs/student-scratch

"$MT" eval tasks --tokenizer tok \
  --model "$T" --name teacher \
  --model runs/student-distilled/checkpoints/step-0000200 --name student-distilled \
  --model runs/student-scratch/checkpoints/step-0000200 --name student-scratch \
  --task hellaswag=opticks_nextline.jsonl \
  --task winogrande="$FIX/winogrande.jsonl" --task arc_easy="$FIX/arc_easy.jsonl" \
  --task mmlu="$FIX/mmlu" --task gsm8k="$FIX/gsm8k/test.jsonl" \
  --ppl opticks-val=opticks_val.txt --ppl-seq-len 128 \
  --out "$OUT/report.md"
"$MT" eval plot runs/teacher runs/student-distilled runs/student-scratch --title "Opticks" --out "$OUT/loss_curves.png"
