#!/usr/bin/python3
"""Independent reference for eval's ROUGE (TestRougeGolden, TestPorterGolden).

Regenerate from this directory with Debian's python3 and python3-nltk:

    apt-get install python3-nltk
    /usr/bin/python3 ref_rouge.py > golden.json

It implements rouge-score's definitions (google-research/rouge, the
package lm-eval and the XLSum papers use) from their description, without
the package:
  tokenize: str.lower(); every run of characters outside [a-z0-9] becomes a
    space; split on whitespace; with use_stemmer, tokens longer than 3
    characters go through nltk's PorterStemmer() (default NLTK_EXTENSIONS
    mode); tokens that are not [a-z0-9]+ are dropped.
  rouge1/rouge2: clipped n-gram overlap; precision = overlap / max(#pred
    n-grams, 1), recall = overlap / max(#ref n-grams, 1).
  rougeL: LCS length over token sequences; all zero if either is empty.
  F = 2PR/(P+R), 0 when P+R = 0.
It also writes the stem of every word in words.txt.
"""
import collections
import json
import os
import re

from nltk.stem import porter

HERE = os.path.dirname(os.path.abspath(__file__))
STEMMER = porter.PorterStemmer()


def tokenize(text, stem):
    text = text.lower()
    text = re.sub(r"[^a-z0-9]+", " ", text)
    toks = re.split(r"\s+", text)
    if stem:
        toks = [STEMMER.stem(t) if len(t) > 3 else t for t in toks]
    return [t for t in toks if re.match(r"^[a-z0-9]+$", t)]


def f1(p, r):
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def ngram_score(ref, pred, n):
    rg = collections.Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
    pg = collections.Counter(tuple(pred[i:i + n]) for i in range(len(pred) - n + 1))
    inter = sum(min(c, pg[g]) for g, c in rg.items())
    p = inter / max(sum(pg.values()), 1)
    r = inter / max(sum(rg.values()), 1)
    return [p, r, f1(p, r)]


def lcs_score(ref, pred):
    if not ref or not pred:
        return [0.0, 0.0, 0.0]
    t = [[0] * (len(pred) + 1) for _ in range(len(ref) + 1)]
    for i in range(1, len(ref) + 1):
        for j in range(1, len(pred) + 1):
            if ref[i - 1] == pred[j - 1]:
                t[i][j] = t[i - 1][j - 1] + 1
            else:
                t[i][j] = max(t[i - 1][j], t[i][j - 1])
    l = t[-1][-1]
    p, r = l / len(pred), l / len(ref)
    return [p, r, f1(p, r)]


def main():
    out = {"pairs": [], "stems": {}}
    with open(os.path.join(HERE, "pairs.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            item = {}
            for stem in (False, True):
                ref = tokenize(d["reference"], stem)
                pred = tokenize(d["prediction"], stem)
                item["stem" if stem else "plain"] = {
                    "rouge1": ngram_score(ref, pred, 1),
                    "rouge2": ngram_score(ref, pred, 2),
                    "rougeL": lcs_score(ref, pred),
                }
            out["pairs"].append(item)
    with open(os.path.join(HERE, "words.txt"), encoding="utf-8") as f:
        for w in f.read().split():
            out["stems"][w] = STEMMER.stem(w)
    # One pair or stem a line, so a change shows as a small diff.
    print('{"pairs": [')
    print(",\n".join(json.dumps(p, sort_keys=True) for p in out["pairs"]))
    print('], "stems": {')
    print(",\n".join(json.dumps(w) + ": " + json.dumps(s) for w, s in out["stems"].items()))
    print("}}")


if __name__ == "__main__":
    main()
