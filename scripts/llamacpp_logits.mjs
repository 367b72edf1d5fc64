// Runs a GGUF file in llama.cpp (the node-llama-cpp package's prebuilt CPU
// build) over a token sequence and compares its raw logits at every
// position with minitron's (`minitron eval nll --logits-out`); optionally
// tokenizes a text with the GGUF's tokenizer. Prints one JSON object:
// {"positions", "vocab", "max_abs_diff", "max_abs_logit", "tokens"}.
// The driver is scripts/llamacpp_check.sh.
//
//   node llamacpp_logits.mjs MODEL.gguf IDS_CSV REF.safetensors [TEXT_FILE]
//
// The KV cache is f32 (node-llama-cpp's default is f16), so an f32 export
// can match minitron's f32 forward pass to float rounding.
import { getLlama } from "node-llama-cpp";
import { readFileSync } from "node:fs";

const [modelPath, idsCSV, refPath, textFile] = process.argv.slice(2);
const ids = idsCSV.split(",").map(Number);

// minitron's logits: a safetensors file holding "logits" [T, V] f32.
const buf = readFileSync(refPath);
const hlen = Number(buf.readBigUInt64LE(0));
const hdr = JSON.parse(buf.subarray(8, 8 + hlen).toString("utf8"));
const info = hdr.logits;
if (!info || info.dtype !== "F32") throw new Error(`${refPath}: no F32 tensor "logits"`);
const [T, V] = info.shape;
const base = 8 + hlen + info.data_offsets[0];
const ref = new Float32Array(buf.buffer.slice(buf.byteOffset + base, buf.byteOffset + base + 4 * T * V));
if (T !== ids.length) throw new Error(`${refPath} has ${T} positions, ${ids.length} ids given`);

const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({
  contextSize: Math.max(256, T),
  batchSize: Math.max(256, T),
  threads: 2,
  // The CPU flash-attention path rounds to f16 (measured: 2e-3 logit error
  // on an f32 model, 3e-6 without it).
  flashAttention: false,
  experimentalKvCacheKeyType: "F32",
  experimentalKvCacheValueType: "F32",
});
const seq = context.getSequence();
const out = await seq.controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }]));
let maxDiff = 0, maxAbs = 0;
for (let t = 0; t < T; t++) {
  const got = out[t]?.next?.logits;
  if (!got || got.size !== V) throw new Error(`position ${t}: llama.cpp gave ${got ? got.size : 0} logits, want ${V}`);
  for (const [tok, v] of got) {
    const r = ref[t * V + tok];
    maxDiff = Math.max(maxDiff, Math.abs(v - r));
    maxAbs = Math.max(maxAbs, Math.abs(r));
  }
}
const res = { positions: T, vocab: V, max_abs_diff: maxDiff, max_abs_logit: maxAbs };
if (textFile) res.tokens = Array.from(model.tokenize(readFileSync(textFile, "utf8"), false));
process.stdout.write(JSON.stringify(res) + "\n");
await context.dispose();
await model.dispose();
