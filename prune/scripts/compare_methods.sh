#!/usr/bin/env bash
# Compare importance-based pruning with random and weight-magnitude pruning at
# the same shapes on a trained teacher (zero-shot held-out loss, no retraining).
# Usage: prune/scripts/compare_methods.sh MINITRON_BIN TEACHER_DIR DATA_PREFIX WORKDIR
set -euo pipefail
mt=$1 teacher=$2 data=$3 work=$4
mkdir -p "$work"
"$mt" importance --model "$teacher" --data "$data" --samples ${SAMPLES:-128} --seq-len ${SEQ:-64} --batch 8 \
  --loss-samples 32 --out "$work/scores.json"
shapes=(
  "width:--hidden 96 --ffn 256 --heads 4"
  "ffn:--ffn 192"
  "heads:--heads 4"
  "hidden:--hidden 96"
  "depth:--layers 3"
)
printf "| shape | importance | magnitude | random (mean of 3 seeds) | random seeds |\n|---|---:|---:|---:|---|\n"
for s in "${shapes[@]}"; do
  name=${s%%:*} flags=${s#*:}
  row=()
  for m in importance magnitude random:1 random:2 random:3; do
    method=${m%%:*} seed=${m#*:}; [ "$seed" = "$m" ] && seed=1
    out="$work/$name-$method-$seed"
    rm -rf "$out"
    "$mt" prune --model "$teacher" --scores "$work/scores.json" --method "$method" --seed "$seed" \
      --data "$data" --eval-samples ${EVAL:-64} --eval-seq-len ${SEQ:-64} --out "$out" $flags >/dev/null 2>&1
    row+=("$(/usr/bin/python3 -c "import json,sys;print('%.4f'%json.load(open(sys.argv[1]))['eval']['student_loss'])" "$out/prune_report.json")")
  done
  teacher_loss=$(/usr/bin/python3 -c "import json,sys;print('%.4f'%json.load(open(sys.argv[1]))['eval']['teacher_loss'])" "$work/$name-importance-1/prune_report.json")
  rmean=$(/usr/bin/python3 -c "import sys;v=[float(x) for x in sys.argv[1:]];print('%.4f'%(sum(v)/len(v)))" "${row[2]}" "${row[3]}" "${row[4]}")
  echo "| $name ($flags; teacher $teacher_loss) | ${row[0]} | ${row[1]} | $rmean | ${row[2]} ${row[3]} ${row[4]} |"
done
