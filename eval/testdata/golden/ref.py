#!/usr/bin/python3
"""Independent reference for eval's golden test (run from this directory with
/usr/bin/python3 after `go test ./eval -run Golden -update`).

For each item in requests.json it
  1. rebuilds the prompt strings from the task fixture files with its own
     implementation of lm-evaluation-harness's task formats and checks that
     the Go side produced the same context/continuation pair;
  2. checks the token split of lm-eval's _encode_pair (trailing context
     whitespace moves to the continuation) by decoding the Go token ids with
     the byte-level vocabulary of tokenizer.json;
  3. runs its own float64 PyTorch implementation of the Llama forward pass
     (RMSNorm, rotate-half RoPE, GQA, SwiGLU) over context+continuation and
     writes the per-choice log-likelihood, is_greedy, and for gsm8k the
     first greedy tokens, to golden.json.
"""
import csv
import json
import math
import os
import re
import struct

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
EVAL = os.path.dirname(os.path.dirname(HERE))


# ---------- safetensors + model ----------

def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).to(torch.float64)
        out[name] = t.reshape(info["shape"])
    return out


class Llama:
    def __init__(self, d):
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.w = load_safetensors(os.path.join(d, "model.safetensors"))
        c = self.cfg
        self.H, self.nh, self.nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c.get("head_dim") or self.H // self.nh
        self.eps = c["rms_norm_eps"]
        self.theta = c.get("rope_theta", 10000.0)

    def rms(self, x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, T):
        # x [heads, T, hd]; rotate-half over the full head dim
        hd = self.hd
        inv = self.theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def logits(self, ids):
        w, T = self.w, len(ids)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(self.cfg["num_hidden_layers"]):
            p = "model.layers.%d." % l
            h = self.rms(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, self.nh, self.hd).transpose(0, 1)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, self.nkv, self.hd).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, self.nkv, self.hd).transpose(0, 1)
            q, k = self.rope(q, T), self.rope(k, T)
            rep = self.nh // self.nkv
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.hd) + mask, -1) @ v
            x = x + att.transpose(0, 1).reshape(T, -1) @ w[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, w[p + "post_attention_layernorm.weight"])
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
        x = self.rms(x, w["model.norm.weight"])
        head = w["model.embed_tokens.weight"] if self.cfg.get("tie_word_embeddings") else w["lm_head.weight"]
        return x @ head.T


# ---------- lm-eval task formats (own implementation) ----------

def jsonl(path):
    return [json.loads(l) for l in open(os.path.join(EVAL, path), encoding="utf-8") if l.strip()]


def hs_pre(t):
    t = t.strip().replace(" [title]", ". ")
    t = re.sub("\\[.*?\\]", "", t)
    return t.replace("  ", " ")


def few(examples):
    return "".join(e + "\n\n" for e in examples)


def prompts(item):
    """Returns the list of (context, continuation) lm-eval builds."""
    task, n, doc = item["task"], item["shots"], item["doc"]
    if task == "hellaswag":
        assert n == 0
        d = jsonl(item["path"])[doc]
        q = hs_pre(d["activity_label"] + ": " + d["ctx_a"] + " " + d["ctx_b"].capitalize())
        return [(q, " " + hs_pre(e)) for e in d["endings"]]
    if task == "winogrande":
        docs = jsonl(item["path"])
        d = docs[doc]

        def parts(x):
            i = x["sentence"].index("_")
            return x["sentence"][:i], x["sentence"][i + 1:].strip()

        pool = [x for j, x in enumerate(docs) if j != doc][:n]
        ex = []
        for x in pool:
            a, rest = parts(x)
            ex.append(a + x["option" + x["answer"]] + " " + rest)
        a, rest = parts(d)
        return [(few(ex) + a + d[o], " " + rest) for o in ("option1", "option2")]
    if task in ("arc_easy", "arc_challenge"):
        assert n == 0
        d = jsonl(item["path"])[doc]
        if isinstance(d["question"], dict):
            stem, texts = d["question"]["stem"], [c["text"] for c in d["question"]["choices"]]
        else:
            stem, texts = d["question"], d["choices"]["text"]
        return [("Question: " + stem + "\nAnswer:", " " + t) for t in texts]
    if task == "mmlu":
        tests = sorted(f for f in os.listdir(os.path.join(EVAL, item["path"], "test")))
        rows = []
        for f in tests:
            subj = f[: -len("_test.csv")]
            for r in csv.reader(open(os.path.join(EVAL, item["path"], "test", f), encoding="utf-8")):
                rows.append((subj, r))
        subj, r = rows[doc]
        fmt = lambda r: r[0].strip() + "".join("\n%s. %s" % (l, c) for l, c in zip("ABCD", r[1:5])) + "\nAnswer:"
        dev = list(csv.reader(open(os.path.join(EVAL, item["path"], "dev", subj + "_dev.csv"), encoding="utf-8")))[:n]
        desc = "The following are multiple choice questions (with answers) about %s.\n\n" % subj.replace("_", " ")
        ctx = desc + few(fmt(x) + " " + x[5] for x in dev) + fmt(r)
        return [(ctx, " " + l) for l in "ABCD"]
    if task == "gsm8k":
        d = jsonl(item["path"])[doc]
        train = jsonl(os.path.join(os.path.dirname(item["path"]), "train.jsonl"))[:n]
        ctx = few("Question: %s\nAnswer: %s" % (x["question"], x["answer"]) for x in train)
        ctx += "Question: %s\nAnswer:" % d["question"]
        return [(ctx, " " + d["answer"])]
    raise ValueError(task)


# ---------- byte-level decoding, to check the token split ----------

def byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


tokj = json.load(open(os.path.join(HERE, "tiny", "tokenizer.json"), encoding="utf-8"))
id2tok = {v: k for k, v in tokj["model"]["vocab"].items()}
bdec = byte_decoder()


def decode(ids):
    return bytes(bdec[ch] for i in ids for ch in id2tok[i]).decode("utf-8")


def main():
    m = Llama(os.path.join(HERE, "tiny"))
    eos = m.cfg["eos_token_id"]
    items = json.load(open(os.path.join(HERE, "requests.json"), encoding="utf-8"))
    out = []
    for it in items:
        want = prompts(it)
        got = [(r["context"], r["continuation"]) for r in it["requests"]]
        assert got == want, "%s: prompt mismatch\n go: %r\n py: %r" % (it["task"], got, want)
        lls, greedy = [], []
        for r in it["requests"]:
            ctx, cont = r["context"], r["continuation"]
            n = len(ctx) - len(ctx.rstrip())
            if n:
                ctx, cont = ctx[:-n], ctx[-n:] + cont
            assert decode(r["ctx_ids"]) == ctx, (it["task"], decode(r["ctx_ids"]), ctx)
            assert decode(r["cont_ids"]) == cont, (it["task"], decode(r["cont_ids"]), cont)
            seq = r["ctx_ids"] + r["cont_ids"]
            lp = torch.log_softmax(m.logits(seq[:-1]), -1)
            c0 = len(r["ctx_ids"]) - 1
            rows = lp[c0:c0 + len(r["cont_ids"])]
            tgt = torch.tensor(r["cont_ids"])
            lls.append(rows.gather(1, tgt[:, None]).sum().item())
            greedy.append(bool((rows.argmax(-1) == tgt).all()))
        gen = []
        if it.get("gen_tokens"):
            seq = list(it["gen_ctx_ids"])
            for _ in range(it["gen_tokens"]):
                nxt = int(m.logits(seq)[-1].argmax())
                if nxt == eos:
                    break
                gen.append(nxt)
                seq.append(nxt)
        out.append({"task": it["task"], "loglik": lls, "greedy": greedy, "gen_ids": gen})
        print(it["task"], ["%.6f" % v for v in lls], gen)
    with open(os.path.join(HERE, "golden.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
