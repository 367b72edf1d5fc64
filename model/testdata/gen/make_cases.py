#!/usr/bin/python3
"""Regenerate model/testdata/cases: small random Hugging Face checkpoints and
reference forward passes for the Go forward pass's tests.

usage: /usr/bin/python3 model/testdata/gen/make_cases.py [OUTDIR]   (default: model/testdata/cases)
       /usr/bin/python3 model/testdata/gen/make_cases.py --nll CHECKPOINT_DIR ID,ID,... [DIR IDS ...]
           prints, one line per pair, {"mean_nll":…,"nll":[…]} of the reference
           forward pass over a checkpoint read from disk (config.json, one or
           more safetensors files)

The reference is an independent float32 PyTorch implementation of the
transformers modeling code for nemotron, llama, mistral, qwen2 and qwen3
(LayerNorm1P / RMSNorm, relu² / SwiGLU, partial rotate-half RoPE with linear
and llama3 rope_scaling as transformers' rope_utils computes them, GQA,
sliding window; qwen2's q/k/v biases without an o_proj bias; qwen3's q_norm /
k_norm RMSNorm over head_dim before RoPE, its head_dim default of 128, and
the Qwen configs' use_sliding_window / max_window_layers / layer_types rule).
Weights are rounded to the stored dtype (bf16/f16) before the reference runs,
so the reference sees exactly what the checkpoint holds. safetensors files are
written by hand (the safetensors package is not installed here).
"""
import json, math, os, struct, sys
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "cases")

DT = {"F32": (torch.float32, torch.int32), "BF16": (torch.bfloat16, torch.int16), "F16": (torch.float16, torch.int16)}


def st_bytes(tensors, dtype):
    """safetensors file bytes: tensors {name: f32 tensor} stored as dtype."""
    tdt, idt = DT[dtype]
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].to(tdt).contiguous()
        b = t.view(idt).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def save(dirpath, cfg, tensors, dtype, shards):
    os.makedirs(dirpath, exist_ok=True)
    for f in os.listdir(dirpath):
        os.remove(os.path.join(dirpath, f))
    with open(os.path.join(dirpath, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = sorted(tensors)
    if shards == 1:
        with open(os.path.join(dirpath, "model.safetensors"), "wb") as f:
            f.write(st_bytes(tensors, dtype))
        return
    wm, total = {}, 0
    for i in range(shards):
        part = names[i::shards]
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        with open(os.path.join(dirpath, fn), "wb") as f:
            f.write(st_bytes({n: tensors[n] for n in part}, dtype))
        for n in part:
            wm[n] = fn
            total += tensors[n].numel() * tensors[n].to(DT[dtype][0]).element_size()
    with open(os.path.join(dirpath, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2)


def head_dim(cfg):
    # Qwen3Config defaults head_dim to 128; the others derive it from H/nH.
    if cfg.get("head_dim"):
        return cfg["head_dim"]
    if cfg["model_type"] == "qwen3":
        return 128
    return cfg.get("kv_channels") or cfg["hidden_size"] // cfg["num_attention_heads"]


def attn_biases(cfg):
    """Which of q, k, v, o projections carry a bias (modeling_qwen2: q/k/v
    always, o never; everyone else: all four under attention_bias)."""
    if cfg["model_type"] == "qwen2":
        return {"q", "k", "v"}
    return {"q", "k", "v", "o"} if cfg.get("attention_bias") else set()


def layer_windows(cfg):
    """Per layer: the sliding window, or None for plain causal attention."""
    L = cfg["num_hidden_layers"]
    if cfg["model_type"] not in ("qwen2", "qwen3"):
        return [cfg.get("sliding_window")] * L
    # configuration_qwen2/3: sliding_window (default 4096) applies only under
    # use_sliding_window, to the layers from max_window_layers (default 28)
    # on, unless layer_types lists each layer's kind.
    win = cfg.get("sliding_window", 4096) if cfg.get("use_sliding_window", False) else None
    types = cfg.get("layer_types")
    if types is None:
        mwl = cfg.get("max_window_layers", 28)
        types = ["sliding_attention" if win is not None and i >= mwl else "full_attention" for i in range(L)]
    return [win if t == "sliding_attention" else None for t in types]


def make_weights(cfg, gen):
    fam = cfg["model_type"]
    H, F, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    nH, nKV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = head_dim(cfg)
    r = lambda *s, std=0.2: torch.randn(*s, generator=gen) * std
    norm_w = (lambda: r(H, std=0.2)) if fam == "nemotron" else (lambda: 1 + r(H, std=0.2))
    norm_bias = fam == "nemotron" and cfg.get("_norm_bias", True)
    # a tied embedding doubles as the head, so keep it small enough for sane logits
    W = {"model.embed_tokens.weight": r(V, H, std=0.125 if cfg.get("tie_word_embeddings") else 1.0), "model.norm.weight": norm_w()}
    if norm_bias:
        W["model.norm.bias"] = r(H, std=0.1)
    for i in range(L):
        p = "model.layers.%d." % i
        W[p + "input_layernorm.weight"] = norm_w()
        W[p + "post_attention_layernorm.weight"] = norm_w()
        if norm_bias:
            W[p + "input_layernorm.bias"] = r(H, std=0.1)
            W[p + "post_attention_layernorm.bias"] = r(H, std=0.1)
        for n, o, i_ in (("q", nH * hd, H), ("k", nKV * hd, H), ("v", nKV * hd, H), ("o", H, nH * hd)):
            W[p + "self_attn.%s_proj.weight" % n] = r(o, i_, std=1 / math.sqrt(i_))
            if n in attn_biases(cfg):
                W[p + "self_attn.%s_proj.bias" % n] = r(o, std=0.1)
        if fam == "qwen3":
            W[p + "self_attn.q_norm.weight"] = 1 + r(hd, std=0.2)
            W[p + "self_attn.k_norm.weight"] = 1 + r(hd, std=0.2)
        mlp = [("up", F, H), ("down", H, F)] + ([("gate", F, H)] if fam != "nemotron" else [])
        for n, o, i_ in mlp:
            W[p + "mlp.%s_proj.weight" % n] = r(o, i_, std=1 / math.sqrt(i_))
            if cfg.get("mlp_bias"):
                W[p + "mlp.%s_proj.bias" % n] = r(o, std=0.1)
    if not cfg.get("tie_word_embeddings"):
        W["lm_head.weight"] = r(V, H, std=1 / math.sqrt(H))
    return W


def inv_freq(cfg, rot):
    # transformers.modeling_rope_utils: default, linear, llama3
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "linear":
        return inv / rs["factor"]
    assert kind == "llama3"
    factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    low_wave, high_wave = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wave, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wave) * ~(wavelen > low_wave)
    return torch.where(medium, smoothed, inv_l)


def reference(cfg, W, ids):
    """Logits [B,T,V] of the transformers forward pass, float32."""
    fam = cfg["model_type"]
    H, nH, nKV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = head_dim(cfg)
    eps = cfg.get("norm_eps", cfg.get("rms_norm_eps", 1e-6 if fam in ("qwen2", "qwen3") else 1e-5))
    prf = cfg.get("partial_rotary_factor", 0.5) if fam == "nemotron" else 1.0
    rot = int(hd * prf)
    B, T = ids.shape
    wins = layer_windows(cfg)

    def norm(x, p):
        if fam == "nemotron":
            return torch.nn.functional.layer_norm(x, (H,), W[p + "weight"] + 1, W.get(p + "bias"), eps)
        v = x.pow(2).mean(-1, keepdim=True)
        return W[p + "weight"] * (x * torch.rsqrt(v + eps))

    def head_norm(x, p):  # qwen3 q_norm / k_norm over the last (head_dim) axis
        v = x.pow(2).mean(-1, keepdim=True)
        return W[p] * (x * torch.rsqrt(v + eps))

    def lin(x, p):
        y = x @ W[p + "weight"].T
        return y + W[p + "bias"] if p + "bias" in W else y

    freqs = torch.outer(torch.arange(T).float(), inv_freq(cfg, rot))
    emb = torch.cat((freqs, freqs), -1)
    cos, sin = emb.cos(), emb.sin()

    def rope(x):  # [B, heads, T, hd]
        xr, xp = x[..., :rot], x[..., rot:]
        a, b = xr[..., : rot // 2], xr[..., rot // 2:]
        return torch.cat((xr * cos + torch.cat((-b, a), -1) * sin, xp), -1)

    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    causal = j <= i
    x = W["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        allowed = causal & (j > i - wins[l]) if wins[l] else causal
        h = norm(x, p + "input_layernorm.")
        q = lin(h, p + "self_attn.q_proj.").view(B, T, nH, hd)
        k = lin(h, p + "self_attn.k_proj.").view(B, T, nKV, hd)
        if fam == "qwen3":
            q, k = head_norm(q, p + "self_attn.q_norm.weight"), head_norm(k, p + "self_attn.k_norm.weight")
        q, k = rope(q.transpose(1, 2)), rope(k.transpose(1, 2))
        v = lin(h, p + "self_attn.v_proj.").view(B, T, nKV, hd).transpose(1, 2)
        k = k.repeat_interleave(nH // nKV, 1)
        v = v.repeat_interleave(nH // nKV, 1)
        s = (q @ k.transpose(-1, -2)) * hd ** -0.5
        s = s.masked_fill(~allowed, float("-inf")).softmax(-1, dtype=torch.float32)
        a = (s @ v).transpose(1, 2).reshape(B, T, nH * hd)
        x = x + lin(a, p + "self_attn.o_proj.")
        h = norm(x, p + "post_attention_layernorm.")
        if fam == "nemotron":
            m = torch.relu(lin(h, p + "mlp.up_proj.")) ** 2
        else:
            m = torch.nn.functional.silu(lin(h, p + "mlp.gate_proj.")) * lin(h, p + "mlp.up_proj.")
        x = x + lin(m, p + "mlp.down_proj.")
    h = norm(x, "model.norm.")
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return h @ head.T


def base_cfg(fam, **kw):
    arch = {"nemotron": "NemotronForCausalLM", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
            "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[fam]
    c = {"architectures": [arch], "model_type": fam, "hidden_size": 64, "intermediate_size": 96,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128,
         "max_position_embeddings": 4096, "tie_word_embeddings": False, "torch_dtype": "float32",
         "bos_token_id": 1, "eos_token_id": 2, "rope_theta": 10000.0}
    if fam == "nemotron":
        c.update(hidden_act="relu2", norm_eps=1e-5, partial_rotary_factor=0.5)
    elif fam in ("qwen2", "qwen3"):
        c.update(hidden_act="silu", rms_norm_eps=1e-6, rope_theta=1e6, use_sliding_window=False,
                 sliding_window=None, max_window_layers=c["num_hidden_layers"], bos_token_id=None)
    else:
        c.update(hidden_act="silu", rms_norm_eps=1e-5)
    c.update(kw)
    return c


CASES = [
    # name, config, stored dtype, shards, reason
    ("nemotron-bf16", base_cfg("nemotron", torch_dtype="bfloat16"), "BF16", 1,
     "bf16 storage (weights widened exactly to f32), norm biases, GQA"),
    ("nemotron-headdim-sharded", base_cfg("nemotron", kv_channels=24, num_hidden_layers=3, _norm_bias=False), "F32", 3,
     "head_dim 24 ≠ hidden/heads 16 (given as NeMo's kv_channels), partial RoPE over 12 dims, no norm biases, 3 shards"),
    ("llama-tied-llama3", base_cfg("llama", tie_word_embeddings=True, num_key_value_heads=4,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 16}), "F32", 1,
     "tied embeddings (no lm_head) and llama3 rope scaling with all three frequency bands in use"),
    ("llama-linear-bias-f16", base_cfg("llama", torch_dtype="float16", attention_bias=True, mlp_bias=True,
                                       rope_scaling={"type": "linear", "factor": 4.0}), "F16", 1,
     "f16 storage, linear rope scaling (legacy 'type' key), attention and MLP biases"),
    ("mistral-window", base_cfg("mistral", head_dim=24, sliding_window=5, rope_theta=1e6), "F32", 1,
     "sliding window 5 shorter than the 20-token sequence, explicit head_dim 24 ≠ 16"),
    # Appended after the cases above so their random draws stay as they were.
    ("qwen2-gqa", base_cfg("qwen2", sliding_window=32768, max_window_layers=2), "F32", 1,
     "qwen2: q/k/v biases, no o_proj bias, GQA 4/2, rope_theta 1e6, a sliding_window that use_sliding_window=false turns off"),
    ("qwen2-tied-bf16-sharded", base_cfg("qwen2", torch_dtype="bfloat16", tie_word_embeddings=True, num_key_value_heads=1,
                                         num_hidden_layers=3, max_window_layers=3), "BF16", 3,
     "qwen2: tied embeddings, bf16 in 3 shards, one KV head for 4 query heads"),
    ("qwen2-window", base_cfg("qwen2", use_sliding_window=True, sliding_window=5, max_window_layers=0), "F32", 1,
     "qwen2: use_sliding_window with max_window_layers 0, so every layer slides over 5 positions"),
    ("qwen3-headdim", base_cfg("qwen3", head_dim=24), "F32", 1,
     "qwen3: q_norm/k_norm before RoPE, explicit head_dim 24 ≠ hidden/heads 16, GQA 4/2, no biases"),
    ("qwen3-tied-bf16-sharded", {k: v for k, v in base_cfg("qwen3", torch_dtype="bfloat16", tie_word_embeddings=True,
                                                           num_hidden_layers=3).items() if k != "max_window_layers"}, "BF16", 3,
     "qwen3: no head_dim key (Qwen3Config's default 128 ≠ 64/4), tied embeddings, bf16 in 3 shards"),
    ("qwen3-bias-window", base_cfg("qwen3", head_dim=16, attention_bias=True, use_sliding_window=True, sliding_window=6,
                                   layer_types=["sliding_attention", "sliding_attention"]), "F32", 1,
     "qwen3: attention_bias puts biases on q, k, v and o; layer_types makes both layers slide over 6 positions"),
]

T = 20


DT_NAMES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
DT_INT = {"F32": (torch.int32, 4), "BF16": (torch.int16, 2), "F16": (torch.int16, 2)}


def load_checkpoint(d):
    """config and f32 weights of a checkpoint directory, safetensors read by
    hand (one file, or the shards an index names)."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    W = {}
    for fn in files:
        with open(os.path.join(d, fn), "rb") as f:
            b = f.read()
        n = struct.unpack("<Q", b[:8])[0]
        hdr = json.loads(b[8:8 + n])
        for name, t in hdr.items():
            if name == "__metadata__":
                continue
            lo, hi = t["data_offsets"]
            idt, _ = DT_INT[t["dtype"]]
            raw = torch.frombuffer(bytearray(b[8 + n + lo:8 + n + hi]), dtype=idt)
            W[name] = raw.view(DT_NAMES[t["dtype"]]).float().reshape(t["shape"])
    return cfg, W


def nll_of(logits, ids):
    lp = torch.log_softmax(logits.double(), -1)
    return [-lp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--nll" and len(sys.argv) % 2 == 0:
        # pairs of CHECKPOINT_DIR IDS: one JSON line each (one torch start-up for all)
        for d, s in zip(sys.argv[2::2], sys.argv[3::2]):
            cfg, W = load_checkpoint(d)
            ids = [int(v) for v in s.split(",")]
            with torch.no_grad():
                logits = reference(cfg, W, torch.tensor([ids]))
            nll = nll_of(logits[0], ids)
            print(json.dumps({"mean_nll": sum(nll) / len(nll), "nll": nll}))
        return
    gen = torch.Generator().manual_seed(1234)
    for name, cfg, dtype, shards, reason in CASES:
        W = make_weights(cfg, gen)
        W = {k: v.to(DT[dtype][0]).float() for k, v in W.items()}  # what the file holds
        ids = torch.randint(0, cfg["vocab_size"], (2, T), generator=gen)
        with torch.no_grad():
            logits = reference(cfg, W, ids)
        lp = torch.log_softmax(logits[0].double(), -1)
        nll = [-lp[t, ids[0, t + 1]].item() for t in range(T - 1)]
        cfg_out = {k: v for k, v in cfg.items() if not k.startswith("_")}
        save(os.path.join(OUT, name), cfg_out, W, dtype, shards)
        exp = {"reason": reason, "ids": ids[0].tolist(), "logits": logits[0].tolist(), "nll": nll,
               "mean_nll": sum(nll) / len(nll), "batch": ids.tolist(), "batch_logits": logits.tolist()}
        with open(os.path.join(OUT, name, "expected.json"), "w") as f:
            json.dump(exp, f)
        print(name, dtype, "shards=%d" % shards, "mean_nll=%.4f" % exp["mean_nll"])


if __name__ == "__main__":
    main()
