#!/usr/bin/python3
"""Reference losses and gradients for distill's whole-model test (llm.c style).

Builds tiny nemotron, llama and mistral (sliding window) models in plain PyTorch
(float64), mirroring Hugging Face's modeling code, and the trained extras: qwen2
(q/k/v biases, no o_proj bias, tied embeddings), qwen3 (RMSNorm over head_dim on
every query and key head before RoPE, explicit head_dim 16 != H/NH) and llama with
attention_bias and mlp_bias (every projection biased); runs one batch, and writes
for each case a directory ref-<name>/ with:
  config.json, model.safetensors   the weights (F32), a Hugging Face checkpoint
  reference.safetensors            tokens [B, T+1], teacher_logits [B*T, V],
                                   loss_ce, loss_mix (shape [1]),
                                   grad_ce.<param>, grad_mix.<param>
loss_ce  = mean cross-entropy on the next token;
loss_mix = 0.5 * loss_ce + tau^2 * mean_rows KL(softmax(teacher/tau) || softmax(student/tau)), tau = 2.
Regenerate: /usr/bin/python3 distill/testdata/make_reference.py  (from the repo root)
"""
import json, math, os, struct
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
B, T, L, H, NH, NKV, F, V = 2, 8, 2, 32, 4, 2, 48, 64
HD = H // NH
TAU = 2.0


def save_safetensors(path, tensors):
    hdr, off, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        b = t.numpy().tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hdr["__metadata__"] = {"format": "pt"}
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def build(family, seed, hd=HD, qkv_bias=False, o_bias=False, mlp_bias=False, qk_norm=False, tied=False):
    g = torch.Generator().manual_seed(seed)
    # Weights are rounded to float32 first: the Go side reads them as F32.
    rnd = lambda *s, std=0.2: (torch.randn(*s, generator=g) * std).float().double().requires_grad_()
    p = {"model.embed_tokens.weight": rnd(V, H, std=0.5)}
    if not tied:
        p["lm_head.weight"] = rnd(V, H)
    nem = family == "nemotron"
    def norm_w():
        return rnd(H, std=0.1) if nem else (1 + torch.randn(H, generator=g) * 0.1).float().double().requires_grad_()
    for i in range(L):
        q = f"model.layers.{i}."
        p[q + "input_layernorm.weight"] = norm_w()
        p[q + "post_attention_layernorm.weight"] = norm_w()
        if nem:
            p[q + "input_layernorm.bias"] = rnd(H, std=0.1)
            p[q + "post_attention_layernorm.bias"] = rnd(H, std=0.1)
        p[q + "self_attn.q_proj.weight"] = rnd(NH * hd, H)
        p[q + "self_attn.k_proj.weight"] = rnd(NKV * hd, H)
        p[q + "self_attn.v_proj.weight"] = rnd(NKV * hd, H)
        p[q + "self_attn.o_proj.weight"] = rnd(H, NH * hd)
        p[q + "mlp.up_proj.weight"] = rnd(F, H)
        p[q + "mlp.down_proj.weight"] = rnd(H, F)
        if not nem:
            p[q + "mlp.gate_proj.weight"] = rnd(F, H)
        if qkv_bias:
            p[q + "self_attn.q_proj.bias"] = rnd(NH * hd)
            p[q + "self_attn.k_proj.bias"] = rnd(NKV * hd)
            p[q + "self_attn.v_proj.bias"] = rnd(NKV * hd)
        if o_bias:
            p[q + "self_attn.o_proj.bias"] = rnd(H)
        if mlp_bias:
            p[q + "mlp.gate_proj.bias"] = rnd(F)
            p[q + "mlp.up_proj.bias"] = rnd(F)
            p[q + "mlp.down_proj.bias"] = rnd(H)
        if qk_norm:
            p[q + "self_attn.q_norm.weight"] = (1 + torch.randn(hd, generator=g) * 0.1).float().double().requires_grad_()
            p[q + "self_attn.k_norm.weight"] = (1 + torch.randn(hd, generator=g) * 0.1).float().double().requires_grad_()
    p["model.norm.weight"] = norm_w()
    if nem:
        p["model.norm.bias"] = rnd(H, std=0.1)
    return p


def forward(family, p, ids, window, hd=HD):
    nem = family == "nemotron"
    eps = 1e-5 if nem else 1e-6
    rot = hd // 2 if nem else hd
    inv = 1.0 / (10000 ** (torch.arange(0, rot, 2, dtype=torch.int64).float() / rot))
    fr = torch.outer(torch.arange(T).float(), inv).double()
    emb = torch.cat((fr, fr), -1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]

    def norm(x, pre):
        if nem:
            return torch.nn.functional.layer_norm(x, (H,), p[pre + ".weight"] + 1, p[pre + ".bias"], eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * p[pre + ".weight"]

    def rope(x):
        xr, xp = x[..., :rot], x[..., rot:]
        return torch.cat((xr * cos + rotate_half(xr) * sin, xp), -1)

    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    visible = j <= i
    if window:
        visible = visible & (j > i - window)
    def lin(h, name):
        # nn.Linear: x·Wᵀ + b when the projection has a bias
        y = h @ p[name + ".weight"].T
        return y + p[name + ".bias"] if name + ".bias" in p else y

    def head_norm(x, name):
        # Qwen3RMSNorm over head_dim (q_norm / k_norm), before RoPE
        if name not in p:
            return x
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * p[name]

    x = p["model.embed_tokens.weight"][ids]
    for l in range(L):
        q = f"model.layers.{l}."
        h = norm(x, q + "input_layernorm")
        qs = rope(head_norm(lin(h, q + "self_attn.q_proj").view(B, T, NH, hd), q + "self_attn.q_norm.weight").transpose(1, 2))
        ks = rope(head_norm(lin(h, q + "self_attn.k_proj").view(B, T, NKV, hd), q + "self_attn.k_norm.weight").transpose(1, 2)).repeat_interleave(NH // NKV, 1)
        vs = lin(h, q + "self_attn.v_proj").view(B, T, NKV, hd).transpose(1, 2).repeat_interleave(NH // NKV, 1)
        att = (qs @ ks.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(~visible, float("-inf")).softmax(-1)
        x = x + lin((att @ vs).transpose(1, 2).reshape(B, T, NH * hd), q + "self_attn.o_proj")
        h = norm(x, q + "post_attention_layernorm")
        if nem:
            a = torch.relu(lin(h, q + "mlp.up_proj")) ** 2
        else:
            a = torch.nn.functional.silu(lin(h, q + "mlp.gate_proj")) * lin(h, q + "mlp.up_proj")
        x = x + lin(a, q + "mlp.down_proj")
    head = p["lm_head.weight"] if "lm_head.weight" in p else p["model.embed_tokens.weight"]
    return norm(x, "model.norm") @ head.T


def case(family, seed, window=None, name=None, hd=HD, cfg_extra=None, **opts):
    p = build(family, seed, hd=hd, **opts)
    g = torch.Generator().manual_seed(seed + 100)
    toks = torch.randint(0, V, (B, T + 1), generator=g)
    teacher = (torch.randn(B * T, V, generator=g) * 2).float().double()
    logits = forward(family, p, toks[:, :T], window, hd=hd).reshape(B * T, V)
    ce = torch.nn.functional.cross_entropy(logits, toks[:, 1:].reshape(-1))
    logp_t = torch.log_softmax(teacher / TAU, -1)
    logq = torch.log_softmax(logits / TAU, -1)
    kl = (logp_t.exp() * (logp_t - logq)).sum(-1).mean() * TAU * TAU
    mix = 0.5 * ce + kl
    names = sorted(p)
    gce = torch.autograd.grad(ce, [p[n] for n in names], retain_graph=True)
    gmix = torch.autograd.grad(mix, [p[n] for n in names])
    out = os.path.join(HERE, "ref-" + (name or family))
    os.makedirs(out, exist_ok=True)
    cfg = {"model_type": family, "hidden_size": H, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": NH, "num_key_value_heads": NKV, "vocab_size": V,
           "max_position_embeddings": 64, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float32"}
    if family == "nemotron":
        cfg.update(norm_eps=1e-5, partial_rotary_factor=0.5, hidden_act="relu2", architectures=["NemotronForCausalLM"])
    else:
        cfg.update(rms_norm_eps=1e-6, hidden_act="silu", architectures=[family.capitalize() + "ForCausalLM"])
    if family == "mistral":
        cfg.update(sliding_window=window, head_dim=HD)
    cfg.update(cfg_extra or {})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    save_safetensors(os.path.join(out, "model.safetensors"), {n: p[n] for n in names})
    ref = {"tokens": toks.double(), "teacher_logits": teacher, "loss_ce": ce.reshape(1), "loss_mix": mix.reshape(1)}
    for n, a, b in zip(names, gce, gmix):
        ref["grad_ce." + n] = a
        ref["grad_mix." + n] = b
    save_safetensors(os.path.join(out, "reference.safetensors"), ref)
    print(name or family, "ce %.6f mix %.6f" % (ce.item(), mix.item()))


case("nemotron", 1)
case("llama", 2)
case("mistral", 3, window=4)
case("qwen2", 4, qkv_bias=True, tied=True,
     cfg_extra=dict(tie_word_embeddings=True, use_sliding_window=False, sliding_window=4, max_window_layers=L,
                    architectures=["Qwen2ForCausalLM"]))
case("qwen3", 5, hd=16, qk_norm=True,
     cfg_extra=dict(head_dim=16, attention_bias=False, use_sliding_window=False, architectures=["Qwen3ForCausalLM"]))
case("llama", 6, name="llama-bias", qkv_bias=True, o_bias=True, mlp_bias=True,
     cfg_extra=dict(attention_bias=True, mlp_bias=True))
