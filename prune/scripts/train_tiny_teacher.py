#!/usr/bin/env python3
"""Train a tiny llama-family teacher on the bytes of Go's own source code.

It exists to compare pruning methods (importance vs random vs weight magnitude)
on a *trained* model without downloads. Writes:
  OUT/teacher/{config.json, model.safetensors}   HF llama layout, f32
  OUT/data_train.{bin,idx}, OUT/data_val.{bin,idx}  Megatron indexed datasets
     (byte-level tokens 0..255, uint16, one document per .go file; files whose
     path hash is < 5% go to val)
Usage: /usr/bin/python3 prune/scripts/train_tiny_teacher.py OUT [seconds]
Running it again on the same OUT continues from the saved weights.
"""
import glob, hashlib, json, math, os, struct, subprocess, sys, time
import torch
import torch.nn.functional as F

out = sys.argv[1]
budget = float(sys.argv[2]) if len(sys.argv) > 2 else 240
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
os.makedirs(out + "/teacher", exist_ok=True)

goroot = subprocess.check_output(["go", "env", "GOROOT"], text=True).strip()
files = sorted(glob.glob(goroot + "/src/**/*.go", recursive=True))
train, val = [], []
total = 0
for f in files:
    if "testdata" in f:
        continue
    b = open(f, "rb").read()
    rel = os.path.relpath(f, goroot)
    (val if hashlib.sha256(rel.encode()).digest()[0] < 13 else train).append(b)
    total += len(b)
    if total > 6_000_000:
        break

def write_indexed(prefix, docs):
    with open(prefix + ".bin", "wb") as fb:
        for d in docs:
            fb.write(bytes(memoryview(torch.tensor(list(d), dtype=torch.int16).numpy().astype("<u2"))))
    lengths = [len(d) for d in docs]
    ptrs, p = [], 0
    for n in lengths:
        ptrs.append(p); p += 2 * n
    with open(prefix + ".idx", "wb") as fi:
        fi.write(b"MMIDIDX\x00\x00")
        fi.write(struct.pack("<Q", 1)); fi.write(struct.pack("<B", 8))
        fi.write(struct.pack("<Q", len(docs))); fi.write(struct.pack("<Q", len(docs) + 1))
        fi.write(struct.pack("<%di" % len(docs), *lengths))
        fi.write(struct.pack("<%dq" % len(docs), *ptrs))
        fi.write(struct.pack("<%dq" % (len(docs) + 1), *range(len(docs) + 1)))

write_indexed(out + "/data_train", train)
write_indexed(out + "/data_val", val)
stream = torch.tensor(list(b"".join(train)), dtype=torch.long)
vstream = torch.tensor(list(b"".join(val)), dtype=torch.long)

V, H, L, NH, NKV, HD, FF, T = 256, 128, 4, 8, 2, 16, 384, 64
cfg = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=H, intermediate_size=FF,
           num_hidden_layers=L, num_attention_heads=NH, num_key_value_heads=NKV, head_dim=HD, vocab_size=V,
           max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
           hidden_act="silu", torch_dtype="float32", bos_token_id=None, eos_token_id=None)

def p(*shape, std=0.02):
    return torch.nn.Parameter(torch.randn(*shape) * std)

W = {"model.embed_tokens.weight": p(V, H), "model.norm.weight": torch.nn.Parameter(torch.ones(H)), "lm_head.weight": p(V, H)}
for l in range(L):
    q = f"model.layers.{l}."
    W[q + "input_layernorm.weight"] = torch.nn.Parameter(torch.ones(H))
    W[q + "post_attention_layernorm.weight"] = torch.nn.Parameter(torch.ones(H))
    W[q + "self_attn.q_proj.weight"] = p(NH * HD, H)
    W[q + "self_attn.k_proj.weight"] = p(NKV * HD, H)
    W[q + "self_attn.v_proj.weight"] = p(NKV * HD, H)
    W[q + "self_attn.o_proj.weight"] = p(H, NH * HD, std=0.02 / math.sqrt(2 * L))
    W[q + "mlp.gate_proj.weight"] = p(FF, H)
    W[q + "mlp.up_proj.weight"] = p(FF, H)
    W[q + "mlp.down_proj.weight"] = p(H, FF, std=0.02 / math.sqrt(2 * L))

inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2).float() / HD))
ang = torch.outer(torch.arange(T).float(), inv)
cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)

mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)

def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

def rot(x):
    a, b = x[..., : HD // 2], x[..., HD // 2 :]
    return torch.cat([-b, a], -1)

def forward(ids):
    B, t = ids.shape
    x = W["model.embed_tokens.weight"][ids]
    for l in range(L):
        q = f"model.layers.{l}."
        h = rms(x, W[q + "input_layernorm.weight"])
        Q = (h @ W[q + "self_attn.q_proj.weight"].T).view(B, t, NH, HD).transpose(1, 2)
        K = (h @ W[q + "self_attn.k_proj.weight"].T).view(B, t, NKV, HD).transpose(1, 2)
        Vv = (h @ W[q + "self_attn.v_proj.weight"].T).view(B, t, NKV, HD).transpose(1, 2)
        Q = Q * cos[:t] + rot(Q) * sin[:t]
        K = K * cos[:t] + rot(K) * sin[:t]
        K = K.repeat_interleave(NH // NKV, 1); Vv = Vv.repeat_interleave(NH // NKV, 1)
        att = (Q @ K.transpose(-1, -2)) / math.sqrt(HD)
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(-1)
        a = (att @ Vv).transpose(1, 2).reshape(B, t, NH * HD)
        x = x + a @ W[q + "self_attn.o_proj.weight"].T
        h = rms(x, W[q + "post_attention_layernorm.weight"])
        x = x + (F.silu(h @ W[q + "mlp.gate_proj.weight"].T) * (h @ W[q + "mlp.up_proj.weight"].T)) @ W[q + "mlp.down_proj.weight"].T
    return rms(x, W["model.norm.weight"]) @ W["lm_head.weight"].T

def load_safetensors(path):
    import numpy as np
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8 : 8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + b : 8 + n + e], dtype="<f4").copy()).view(*v["shape"])
    return out

# Continue from an earlier run's weights (the schedule restarts).
if os.path.exists(out + "/teacher/model.safetensors"):
    with torch.no_grad():
        for k, v in load_safetensors(out + "/teacher/model.safetensors").items():
            W[k].copy_(v)
    print("continuing from", out + "/teacher/model.safetensors", flush=True)

opt = torch.optim.AdamW(W.values(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.95))
g = torch.Generator().manual_seed(1)
def batch(s, n):
    i = torch.randint(0, len(s) - T - 1, (n,), generator=g)
    return torch.stack([s[j : j + T + 1] for j in i])

start, step = time.time(), 0
while time.time() - start < budget:
    frac = (time.time() - start) / budget
    for pg in opt.param_groups:
        pg["lr"] = 3e-3 * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
    b = batch(stream, 16)
    loss = F.cross_entropy(forward(b[:, :-1]).reshape(-1, V), b[:, 1:].reshape(-1))
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(W.values(), 1.0); opt.step()
    if step % 25 == 0:
        print(f"step {step} loss {loss.item():.4f} {time.time()-start:.0f}s", flush=True)
    step += 1
with torch.no_grad():
    b = batch(vstream, 64)
    vl = F.cross_entropy(forward(b[:, :-1]).reshape(-1, V), b[:, 1:].reshape(-1)).item()
print(f"trained {step} steps in {time.time()-start:.0f}s; val loss {vl:.4f}")

def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().float()
        b = t.numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs:
            f.write(b)

save_safetensors(out + "/teacher/model.safetensors", W)
json.dump({k: v for k, v in cfg.items() if v is not None}, open(out + "/teacher/config.json", "w"), indent=1)
