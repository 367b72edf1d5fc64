#!/usr/bin/env bash
# Checks `minitron export gguf` against llama.cpp itself: the prebuilt CPU
# build of the node-llama-cpp npm package loads each exported file and its
# raw logits for a 64-token sequence are compared with
# `minitron eval nll --logits-out` (f32 weights, f32 KV cache, flash
# attention off); its tokenizer, read from the GGUF, must give minitron's
# ids on a text sample. Models: a tiny random llama (byte-level BPE, GPT-2
# split), one with Llama-3's split pattern and rope_scaling (llama3), two
# with SentencePiece-style tokenizer.json files (Llama-2's normalizer, a
# Metaspace pre-tokenizer),
# mistral and nemotron (SentencePiece with byte fallback), a pruned-shape
# llama student whose head_dim ≠ hidden/heads, a pruned nemotron, qwen2
# (q/k/v biases, a Qwen2-style tokenizer) and a qwen3 student (q/k norms,
# head_dim ≠ hidden/heads, tied); dtypes f32, f16, bf16, q8_0.
#
#   scripts/llamacpp_check.sh            # needs go, node ≥ 18 and npm
#
# LLAMACPP_DIR (default /tmp/minitron-llamacpp) holds the npm install; it is
# made once. Not part of CI: it needs the npm registry on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMACPP_DIR=${LLAMACPP_DIR:-/tmp/minitron-llamacpp}
NLC_VERSION=${NLC_VERSION:-3.22.1}
if [ ! -d "$LLAMACPP_DIR/node_modules/node-llama-cpp" ]; then
	mkdir -p "$LLAMACPP_DIR"
	(cd "$LLAMACPP_DIR" && npm init -y >/dev/null &&
		npm install --no-audit --no-fund --ignore-scripts --omit=optional \
			"node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" >/dev/null)
fi
cp scripts/llamacpp_logits.mjs "$LLAMACPP_DIR/"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/minitron" ./cmd/minitron
mt="$work/minitron"
# The text sample: real prose shipped with Go.
head -c 2000 "$(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt" | tail -c 600 >"$work/sample.txt"

fail=0
printf '%-16s %-5s %10s %12s %10s  %s\n' model dtype bytes max_abs_diff max_logit tokenizer
check() { # name tolerance-f32 init-args...
	local name=$1
	shift
	"$mt" init --out "$work/$name" --seed 3 --std 0.1 "$@" >/dev/null
	case $name in *-rope3) # Llama-3.1's rope_scaling, scaled down to act within 64 tokens
		python3 - "$work/$name/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
json.dump(c, open(p, "w"), indent=2)
PY
	esac
	local ids
	if [ -e "$work/$name/tokenizer.json" ] || [ -e "$work/$name/tokenizer.model" ]; then
		"$mt" tokenizer encode --tokenizer "$work/$name" --file "$work/sample.txt" >"$work/$name.ids"
		ids=$(tr ',' '\n' <"$work/$name.ids" | head -64 | paste -sd, -)
	else
		ids=$(seq 1 64 | awk '{printf "%s%d", (NR>1?",":""), ($1*37+5)%200}')
	fi
	"$mt" eval nll --model "$work/$name" --ids "$ids" --logits-out "$work/$name.ref.safetensors" >/dev/null
	for dt in f32 f16 bf16 q8_0; do
		"$mt" export gguf --model "$work/$name" --out "$work/$name-$dt.gguf" --dtype "$dt" >/dev/null
		local text=()
		[ -e "$work/$name.ids" ] && text=("$work/sample.txt")
		local res
		res=$(cd "$LLAMACPP_DIR" && node llamacpp_logits.mjs "$work/$name-$dt.gguf" "$ids" "$work/$name.ref.safetensors" "${text[@]}")
		local verdict
		verdict=$(python3 - "$res" "$dt" "$work/$name.ids" <<'PY'
import json, sys, os
r, dt, idsf = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
# f32 must match to float rounding; the others within their rounding,
# relative to the largest logit.
tol = {"f32": 1e-4, "f16": 1e-2, "bf16": 5e-2, "q8_0": 5e-2}[dt]
lim = tol if dt == "f32" else tol * r["max_abs_logit"]
ok = r["max_abs_diff"] <= lim
tok = "-"
if "tokens" in r:
    want = [int(x) for x in open(idsf).read().strip().split(",")]
    tok = "same ids (%d)" % len(want) if r["tokens"] == want else "DIFFERENT ids"
    ok = ok and r["tokens"] == want
print(("ok" if ok else "FAIL"), "%.3g" % r["max_abs_diff"], "%.3g" % r["max_abs_logit"], tok.replace(" ", "_"))
PY
)
		set -- $verdict
		printf '%-16s %-5s %10d %12s %10s  %s %s\n' "$name" "$dt" "$(stat -c %s "$work/$name-$dt.gguf")" "$2" "$3" "${4//_/ }" "$1"
		[ "$1" = ok ] || fail=1
	done
}
check llama --arch llama --layers 2 --tokenizer data/testdata/tok/gpt2-tiny.json
check llama3-rope3 --arch llama --layers 2 --tokenizer data/testdata/tok/llama3-tiny.json
check llama2-json --arch llama --layers 2 --tokenizer data/testdata/tok/llama2-tiny.json
check metaspace-json --arch mistral --layers 2 --tokenizer data/testdata/tok/metaspace-tiny.json
check mistral --arch mistral --layers 2 --tokenizer data/testdata/tok/spm-bpe-fb.model
check nemotron --arch nemotron --layers 2 --tokenizer data/testdata/tok/spm-bpe-fb.model
check llama-pruned --arch llama --layers 2 --hidden 96 --heads 3 --kv-heads 1 --head-dim 64 --ffn 128 --tokenizer data/testdata/tok/gpt2-tiny.json
# llama.cpp's nemotron needs heads·head_dim = hidden (export gguf refuses
# others): a nemotron student pruned in hidden and heads together.
check nemotron-pruned --arch nemotron --layers 2 --hidden 96 --heads 3 --kv-heads 1 --head-dim 32 --ffn 192 --tokenizer data/testdata/tok/spm-bpe-fb.model
# Qwen2-style tokenizer.json: llama3-tiny's with Qwen2's single-digit split
# and the NFC normalizer Qwen's files declare (llama.cpp's pre "qwen2").
sed -e 's/\\\\p{N}{1,3}/\\\\p{N}/' -e 's/"normalizer": null/"normalizer": {"type": "NFC"}/' \
	data/testdata/tok/llama3-tiny.json >"$work/qwen2-tiny.json"
grep -q '"NFC"' "$work/qwen2-tiny.json" && ! grep -q '{1,3}' "$work/qwen2-tiny.json"
# qwen2: random q/k/v biases, NEOX RoPE; qwen3: q/k norms, a student whose
# head_dim ≠ hidden/heads, tied embeddings.
check qwen2 --arch qwen2 --layers 2 --tokenizer "$work/qwen2-tiny.json"
check qwen3-pruned --arch qwen3 --layers 2 --hidden 96 --heads 3 --kv-heads 1 --head-dim 64 --ffn 128 --tie-embeddings --tokenizer "$work/qwen2-tiny.json"
exit $fail
