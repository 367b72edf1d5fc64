#!/usr/bin/python3
"""Regenerates the SentencePiece golden fixtures for sentencepiece_test.go.

Writes train.txt (the training text), test.txt (the text to encode), four
small models trained by spm_train (BPE and Unigram, with and without
byte_fallback; identity normalization), one Unigram model with user-defined
and control symbols, two models with NFKC charsmaps (nmt_nfkc, nfkc_cf;
these files are ~250 KB because of the charsmap), and for each model the
ids spm_encode gives for every line of test.txt (<model>.ids) and the text
spm_decode gives back (<model>.decoded).

Everything is deterministic: the text comes from fixed files of the Go
installation and a seeded generator. Run from this directory:
    /usr/bin/python3 make_golden.py
Needs Debian's sentencepiece (spm_train, spm_encode, spm_decode) and go.
"""
import os
import random
import subprocess

GOROOT = subprocess.check_output(["go", "env", "GOROOT"], text=True).strip()
rng = random.Random(20261127)

# Characters for synthetic lines: Latin with accents, Greek, Cyrillic, CJK,
# emoji, symbols. Some appear only in test.txt so unknown/byte-fallback
# paths are exercised.
COMMON = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
          "éèêàçüöäßñøåÉ" "αβγδεζηθλμπσω" "привет" "日本語中文字" "€£¥©°±×÷→←")
RARE = "ǅǈǋ₿∮⌘☃♞⚡✈❄〄ㄱ가각ｶﾞ🙂🚀🎉𝔘𝔫𝔦𝔠𝔬𝔡𝔢"


def synthetic(n, rare):
    lines = []
    for _ in range(n):
        kind = rng.randrange(6)
        if kind == 0:  # numbers and digits
            parts = [str(rng.randrange(10 ** rng.randrange(1, 12))) for _ in range(rng.randrange(1, 8))]
            lines.append(rng.choice([" ", ", ", "  ", "-", "."]).join(parts))
        elif kind == 1:  # runs of spaces, leading/trailing spaces, tabs
            words = ["".join(rng.choice(COMMON) for _ in range(rng.randrange(1, 9))) for _ in range(rng.randrange(1, 6))]
            line = ""
            for w in words:
                line += " " * rng.randrange(0, 5) + rng.choice(["", "\t"]) + w
            lines.append(line + " " * rng.randrange(0, 3))
        elif kind == 2:  # unicode words
            chars = COMMON + (RARE if rare else "")
            lines.append(" ".join("".join(rng.choice(chars) for _ in range(rng.randrange(1, 10)))
                                  for _ in range(rng.randrange(1, 10))))
        elif kind == 3:  # code-like
            ident = "".join(rng.choice("abcdefxyz_") for _ in range(rng.randrange(1, 8)))
            lines.append(rng.choice(["\t", "    ", ""]) + f"{ident} := {rng.randrange(1000)} // x[{rng.randrange(9)}] != nil && {ident}++")
        elif kind == 4:  # punctuation runs
            lines.append("".join(rng.choice("!?.,;:()[]{}<>\"'/\\|@#$%^&*-_=+~`") for _ in range(rng.randrange(1, 30))))
        else:  # mixed prose
            words = ["the", "light", "of", "Prism", "Colours", "1704", "ray's", "won't", "naïve", "café", "日本", "über"]
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randrange(1, 15))))
    return lines


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n").rstrip("\r") for l in f]


opticks = [l for l in read_lines(os.path.join(GOROOT, "src/testdata/Isaac.Newton-Opticks.txt")) if l.strip()]
gofiles = ["src/strings/strings.go", "src/fmt/print.go", "src/sort/sort.go", "src/unicode/utf8/utf8.go",
           "src/bufio/bufio.go"]
gosrc = []
for g in gofiles:
    gosrc += [l for l in read_lines(os.path.join(GOROOT, g)) if l.strip()]

train = opticks[200:1700:2] + gosrc[0:3000:3] + synthetic(900, rare=False)
test = opticks[201:1700:3] + gosrc[1:3000:5] + synthetic(500, rare=True) + [
    "", " ", "   leading and trailing   ", "a  b   c", "\tTab\tseparated\t", "<tool> uses <ctrl> and foo_bar",
    "x<tool>y", "<s> and </s> are control symbols", "é", "🙂🙂🙂", "ǅǈǋ mixed ₿ unknown", "1234567890",
    # Characters NFKC changes (for the nmt_nfkc / nfkc_cf models).
    "ﬁnance ﬂow", "ＡＢＣ１２３ｘｙｚ", "① ② ③ Ⅻ", "x\u00a0y\u2003z", "ﾊﾟﾝ ｶﾞ", "Straße STRASSE ǅ",
    "\u3000全角\u3000スペース", "a\u200bb\u200dc", "e\u0301 vs \u00e9", "ℌ𝔢𝔩𝔩𝔬 ℍ𝕖𝕝𝕝𝕠", "x²+y³=z½",
]
# spm_encode is line based: no newlines inside a line.
test = [l.replace("\n", " ") for l in test]

with open("train.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(train) + "\n")
with open("test.txt", "w", encoding="utf-8") as f:
    f.write("\n".join(test) + "\n")

common = ["--input=train.txt", "--num_threads=1", "--character_coverage=0.9995", "--minloglevel=2"]
ident = "--normalization_rule_name=identity"
models = {
    "spm-bpe": [ident, "--model_type=bpe", "--vocab_size=800"],
    "spm-bpe-fb": [ident, "--model_type=bpe", "--vocab_size=800", "--byte_fallback=true",
                   "--remove_extra_whitespaces=false", "--split_digits=true"],
    "spm-uni": [ident, "--model_type=unigram", "--vocab_size=800"],
    "spm-uni-fb": [ident, "--model_type=unigram", "--vocab_size=800", "--byte_fallback=true"],
    "spm-uni-user": [ident, "--model_type=unigram", "--vocab_size=600", "--user_defined_symbols=<tool>,foo_bar",
                     "--control_symbols=<ctrl>"],
    # Default normalization (nmt_nfkc precompiled charsmap) and case folding.
    "spm-bpe-nfkc": ["--model_type=bpe", "--vocab_size=800"],
    "spm-uni-nfkccf": ["--normalization_rule_name=nfkc_cf", "--model_type=unigram", "--vocab_size=800",
                       "--byte_fallback=true"],
}
for name, args in models.items():
    subprocess.run(["spm_train", f"--model_prefix={name}"] + common + args, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.remove(name + ".vocab")
    subprocess.run(["spm_encode", f"--model={name}.model", "--output_format=id", "--input=test.txt",
                    f"--output={name}.ids"], check=True)
    subprocess.run(["spm_decode", f"--model={name}.model", "--input_format=id", f"--input={name}.ids",
                    f"--output={name}.decoded"], check=True)
    print(name, os.path.getsize(name + ".model"), "bytes")
