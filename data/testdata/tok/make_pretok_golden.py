#!/usr/bin/python3
"""Writes pretok_golden.json: how the GPT-2, Llama-3 and Qwen2 split regexes
(evaluated by Python's `regex` module, Debian python3-regex) cut a set of
tricky strings. pretok_test.go checks the hand-written Go scanners against it.

Run from this directory: /usr/bin/python3 make_pretok_golden.py
"""
import json
import os
import random
import subprocess

import regex

PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "llama3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    # GPT-4o (o200k) and the last Split of DeepSeek-V3: run by the generic
    # head-regexp + whitespace-tail engine.
    "o200k": r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "deepseek": r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}

fixed = [
    "", " ", "  ", "x", " x", "  x", "   x  ", "hello world", "Hello,  world!\n\nNew para.",
    "I'm here, you're there, it's", "DON'T WE'LL THEY'RE I'D", "'s's''t", "x'S", "rock'n'roll",
    "a\r\nb", "a \r\n b", "\n\n\n", " \n \n x", "\t\tfunc main() {\n\t\treturn\n\t}\n",
    "12345678", "x12345y", " 1 22 333 4444", "٣٤٥٦ ⅷ ½ ²³", "1,000.50$", "v1.2.3-rc4",
    "naïve café", "e\u0301 combining", "日本語のテキスト。", "안녕하세요 세계", "🙂🚀 emoji 🎉!",
    "a\u00a0b", "a\u3000b", "a\u2003\u2003b", "x\u0085y", "a\x1cb", "a\x0bb\x0cc",
    "  ...  ??  !!", " ?? x", "x  \n", "x \n\n y", " \t\n x", "\r\r\nx", "a\n\r\n",
    "// comment\n\tif err != nil {\n\t\treturn nil, err\n\t}",
    "$$$x", " $x", "<|endoftext|>", "~~~ ~~ ~", "\u200bzero width", "tab\tsep\tvalues",
]

rng = random.Random(7)
alphabet = "ab Z9 \t\n\r'sltdmvrEé日🙂.,!?-_" + "\u00a0" + "٣"
randoms = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 25))) for _ in range(400)]

goroot = subprocess.check_output(["go", "env", "GOROOT"], text=True).strip()
with open(os.path.join(goroot, "src/strings/strings.go"), encoding="utf-8") as f:
    gosrc = f.read()
with open(os.path.join(goroot, "src/testdata/Isaac.Newton-Opticks.txt"), encoding="utf-8") as f:
    opticks = f.read()
chunks = [gosrc[i:i + 300] for i in range(0, 6000, 300)] + [opticks[i:i + 300] for i in range(10000, 16000, 300)]

def isolated(pat, text):
    """HF Split(behavior=Isolated): every match, and every gap between matches, is a piece."""
    out, last = [], 0
    for m in regex.finditer(pat, text):
        if m.start() == m.end():
            continue
        if m.start() > last:
            out.append(text[last:m.start()])
        out.append(m.group())
        last = m.end()
    if last < len(text):
        out.append(text[last:])
    return out


cases = [{"patterns": PATTERNS}]
for text in fixed + randoms + chunks:
    case = {"text": text}
    for name, pat in PATTERNS.items():
        case[name] = isolated(pat, text)
        assert "".join(case[name]) == text, (name, text)
    cases.append(case)

with open("pretok_golden.json", "w", encoding="utf-8") as f:
    json.dump(cases, f, ensure_ascii=False, indent=0)
print(len(cases), "cases")
