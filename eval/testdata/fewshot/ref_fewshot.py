#!/usr/bin/python3
"""Expected few-shot choices for eval's TestFewShotSampler.

Regenerate from this directory with any CPython 3.x:

    python3 ref_fewshot.py > golden.json

It mirrors lm-evaluation-harness's ContextSampler (lm_eval/api/samplers.py,
read at commit 4e7e0d47, and Task.fewshot_context in lm_eval/api/task.py)
with Python's own random module: one random.Random(1234) per task (per
subject for MMLU, which lm-eval runs as one task per subject), and for each
evaluated document in order
    if the few-shot split is the evaluated split:
        chosen = [x for x in rnd.sample(fewshot_docs, k + 1) if x != doc][:k]
    else:
        chosen = rnd.sample(fewshot_docs, k)
(Earlier lm-eval releases drew k + 1 only for the same split too and
filtered "x != doc" always, which picks the same examples unless a train
document equals a test one.)
Pool documents here are their indices, all distinct, so "x != doc" is
index inequality (and always true for a document of another split).
It also records raw generator output (random(), getrandbits, shuffle) to
check the Mersenne Twister itself.
"""
import json
import random

CASES = [
    # name, pool size, shots, same split, evaluated docs
    ("arc_challenge 25-shot from train (1119 items)", 1119, 25, False, 12),
    ("arc 25-shot from the evaluated file itself (40 items)", 40, 25, True, 40),
    ("mmlu subject 5-shot from dev (5 items)", 5, 5, False, 6),
    ("gsm8k 5-shot from train (7473 items)", 7473, 5, False, 10),
    ("hellaswag 10-shot from the evaluated file (30 items)", 30, 10, True, 30),
    ("small pool, 6-shot, same split (7 items)", 7, 6, True, 7),
    # TestFewShotLoadTask loads this one through LoadTask from the task
    # fixtures: gsm8k/test.jsonl (3 items), 3-shot from train.jsonl (5).
    ("gsm8k fixture 3-shot from train.jsonl", 5, 3, False, 3),
]


def main():
    out = {"cases": [], "raw": {}}
    for name, n, k, same, m in CASES:
        rnd = random.Random(1234)
        pool = list(range(n))
        chosen = []
        for j in range(m):
            # An evaluated document is pool item j when the few-shot split
            # is the evaluated one.
            if same:
                chosen.append([x for x in rnd.sample(pool, k + 1) if x != j][:k])
            else:
                chosen.append(rnd.sample(pool, k))
        out["cases"].append({"name": name, "pool": n, "shots": k, "same_split": same, "docs": m, "chosen": chosen})
    r = random.Random(1234)
    out["raw"]["random"] = [r.random() for _ in range(5)]
    out["raw"]["getrandbits_7"] = [r.getrandbits(7) for _ in range(5)]
    out["raw"]["getrandbits_40"] = [r.getrandbits(40) for _ in range(3)]
    xs = list(range(20))
    r.shuffle(xs)
    out["raw"]["shuffle_20"] = xs
    big = random.Random(2**40 + 5)
    out["raw"]["seed_2_40_plus_5_random"] = [big.random() for _ in range(3)]
    neg = random.Random(-1234)
    out["raw"]["seed_minus_1234_random"] = [neg.random() for _ in range(2)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
