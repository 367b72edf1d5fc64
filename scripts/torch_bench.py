#!/usr/bin/env python3
"""PyTorch baseline for `minitron bench forward` and `minitron bench train`.

Builds the same random decoder as the minitron command with the same flags
(nemotron: LayerNorm1P, squared-ReLU MLP, partial RoPE 0.5; llama/mistral:
RMSNorm, SwiGLU MLP, full RoPE; GQA; untied lm_head; head_dim = hidden/heads)
and times it the same way:

  forward  full forward passes (all logits) over random tokens: --warmup
           untimed passes, then the best of --iters
  train    full optimizer steps on one fixed random batch: 2 untimed steps,
           then the best of --steps; --loss ce (labels) or kd (a frozen
           teacher of the same shape and forward KL, temperature 1); AdamW

tokens/s = batch*seq / best time; GFLOP/s counts matrix products only, as
model.ForwardFLOPs does (a training step counts 3 forwards, plus the
teacher's forward for kd). --threads 0 tries 1 thread and all cores and
reports the better, like `minitron bench train`. On --device cuda, TF32
products are on unless --no-tf32 (minitron's default), and --bf16 runs the
products under bf16 autocast with f32 weights.

  python3 scripts/torch_bench.py forward --batch 8 --seq 128 --json
  python3 scripts/torch_bench.py train --loss kd --batch 8 --seq 128
  python3 scripts/torch_bench.py train --device cuda --bf16 --layers 8 --hidden 768 --heads 12 \\
      --kv-heads 4 --ffn 3072 --vocab 32000 --batch 8 --seq 1024

Needs PyTorch (pip install torch); the flags parse without it.
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="torch_bench.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode in ("forward", "train"):
        p = sub.add_parser(mode, help=f"time {mode} like `minitron bench {mode}`")
        p.add_argument("--arch", default="nemotron", choices=["nemotron", "llama", "mistral"],
                       help="architecture family of the random model")
        for k, v, h in [("layers", 4, "layers"), ("hidden", 256, "hidden size"),
                        ("heads", 4, "attention heads"), ("kv-heads", 2, "KV heads (GQA groups)"),
                        ("ffn", 1024, "MLP intermediate size"), ("vocab", 4096, "vocabulary size"),
                        ("batch", 8, "sequences per pass or step"), ("seq", 128, "tokens per sequence")]:
            p.add_argument("--" + k, type=int, default=v, help=f"{h} (default {v})")
        if mode == "forward":
            p.add_argument("--warmup", type=int, default=2, help="untimed passes first (default 2)")
            p.add_argument("--iters", type=int, default=5, help="timed passes (default 5)")
        else:
            p.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
            p.add_argument("--loss", default="ce", choices=["ce", "kd"],
                           help="ce (labels) or kd (forward KL from a same-shape teacher)")
        p.add_argument("--threads", type=int, default=0,
                       help="torch CPU threads (0: best of 1 and all cores)")
        p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu or cuda (GPU 0)")
        p.add_argument("--no-tf32", action="store_true", help="cuda: full f32 products")
        p.add_argument("--bf16", action="store_true", help="cuda: bf16 autocast (f32 weights)")
        p.add_argument("--json", action="store_true", help="print JSON (tokens_per_s, gflops, ...)")
    a = ap.parse_args(argv)
    if min(getattr(a, "iters", 1), getattr(a, "steps", 1)) < 1 or min(a.layers, a.hidden, a.heads, a.kv_heads, a.ffn, a.vocab, a.batch, a.seq) < 1:
        ap.error("sizes, --iters and --steps must be positive")
    if a.hidden % a.heads or a.heads % a.kv_heads:
        ap.error(f"--hidden {a.hidden} must be a multiple of --heads {a.heads}, "
                 f"and --heads a multiple of --kv-heads {a.kv_heads}")
    if a.bf16 and a.device != "cuda":
        ap.error("--bf16 needs --device cuda")
    return a


def forward_flops(a):
    """model.ForwardFLOPs: matrix products only, a multiply-add counted as 2."""
    H, F, V, L, B, T = a.hidden, a.ffn, a.vocab, a.layers, a.batch, a.seq
    hd = H // a.heads
    qd, kvd = a.heads * hd, a.kv_heads * hd
    m = 1 if a.arch == "nemotron" else 2
    proj = 2 * B * T * (L * (H * (qd + 2 * kvd) + qd * H + m * H * F + F * H) + H * V)
    return proj + L * B * a.heads * 4 * hd * T * (T + 1) / 2


def build(a, torch):
    nn, Fn = torch.nn, torch.nn.functional
    H, nH, nKV, F, V, L = a.hidden, a.heads, a.kv_heads, a.ffn, a.vocab, a.layers
    hd = H // nH
    nemotron = a.arch == "nemotron"
    rot = (int(hd * 0.5) if nemotron else hd) & ~1

    class LN1P(nn.Module):  # nemotron: (x-mean)/sqrt(var+eps)·(w+1)+b
        def __init__(s):
            super().__init__()
            s.w, s.b = nn.Parameter(torch.zeros(H)), nn.Parameter(torch.zeros(H))

        def forward(s, x):
            return Fn.layer_norm(x, (H,), s.w + 1, s.b, 1e-5)

    class RMS(nn.Module):  # llama/mistral: x·rsqrt(mean(x²)+eps)·w
        def __init__(s):
            super().__init__()
            s.w = nn.Parameter(torch.ones(H))

        def forward(s, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * s.w

    Norm = LN1P if nemotron else RMS
    inv = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    fr = torch.outer(torch.arange(a.seq).float(), inv)
    emb = torch.cat((fr, fr), -1)
    cos, sin = emb.cos()[None, None].to(a.device), emb.sin()[None, None].to(a.device)

    def rope(x):  # rotate-half on the first rot dims of each head
        xr, xp = x[..., :rot], x[..., rot:]
        x1, x2 = xr[..., :rot // 2], xr[..., rot // 2:]
        return torch.cat((xr * cos + torch.cat((-x2, x1), -1) * sin, xp), -1)

    def lin(i, o):
        return nn.Linear(i, o, bias=False)

    class Block(nn.Module):
        def __init__(s):
            super().__init__()
            s.n1, s.n2 = Norm(), Norm()
            s.q, s.k, s.v, s.o = lin(H, nH * hd), lin(H, nKV * hd), lin(H, nKV * hd), lin(nH * hd, H)
            s.up, s.down = lin(H, F), lin(F, H)
            s.gate = None if nemotron else lin(H, F)

        def forward(s, x):
            B, T = x.shape[0], x.shape[1]
            h = s.n1(x)
            q = rope(s.q(h).view(B, T, nH, hd).transpose(1, 2))
            # GQA: query head j uses KV head j // (nH/nKV).
            k = rope(s.k(h).view(B, T, nKV, hd).transpose(1, 2)).repeat_interleave(nH // nKV, 1)
            v = s.v(h).view(B, T, nKV, hd).transpose(1, 2).repeat_interleave(nH // nKV, 1)
            att = Fn.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + s.o(att.transpose(1, 2).reshape(B, T, nH * hd))
            h = s.n2(x)
            mlp = torch.relu(s.up(h)) ** 2 if nemotron else Fn.silu(s.gate(h)) * s.up(h)
            return x + s.down(mlp)

    class Model(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(V, H)
            s.blocks = nn.ModuleList([Block() for _ in range(L)])
            s.norm, s.head = Norm(), lin(H, V)

        def forward(s, ids):
            x = s.emb(ids)
            for b in s.blocks:
                x = b(x)
            return s.head(s.norm(x))

    return Model().to(a.device)


def run(a, torch, threads):
    Fn = torch.nn.functional
    if a.device == "cpu":
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = build(a, torch)
    teacher = None
    if a.mode == "train" and a.loss == "kd":
        teacher = build(a, torch).requires_grad_(False)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    tgt = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
    opt = torch.optim.AdamW(m.parameters(), 1e-4) if a.mode == "train" else None

    def cast():  # bf16 autocast on the GPU when asked, else nothing
        if a.device == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16)
        return contextlib.nullcontext()

    def step():
        if a.mode == "forward":
            with torch.no_grad(), cast():
                m(ids)
            return
        with cast():
            logits = m(ids).float().view(-1, a.vocab)
            if teacher is None:
                loss = Fn.cross_entropy(logits, tgt.view(-1))
            else:
                with torch.no_grad():
                    t = teacher(ids).float().view(-1, a.vocab)
                # KL(teacher || student) per token.
                loss = Fn.kl_div(Fn.log_softmax(logits, -1), Fn.log_softmax(t, -1),
                                 log_target=True, reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if a.device == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup if a.mode == "forward" else 2):
        step()
    sync()
    times = []
    for _ in range(a.iters if a.mode == "forward" else a.steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times, sum(p.numel() for p in m.parameters())


def main(argv):
    a = parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit("torch_bench.py: needs PyTorch (pip install torch)")
    if a.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("torch_bench.py: --device cuda but torch sees no GPU")
        torch.backends.cuda.matmul.allow_tf32 = not a.no_tf32
        torch.backends.cudnn.allow_tf32 = not a.no_tf32
    tries = [a.threads] if a.threads > 0 or a.device == "cuda" else sorted({1, os.cpu_count() or 1})
    results = {}
    params = 0
    for th in tries:
        results[th], params = run(a, torch, th)
    best_th = min(results, key=lambda th: min(results[th]))
    best, mean = min(results[best_th]), sum(results[best_th]) / len(results[best_th])
    flops = forward_flops(a)
    if a.mode == "train":
        flops = 3 * flops + (flops if a.loss == "kd" else 0)
    out = {
        "tokens_per_s": a.batch * a.seq / best, "gflops": flops / best / 1e9,
        "best_ms": best * 1e3, "mean_ms": mean * 1e3, "threads": best_th,
        "all": {str(th): a.batch * a.seq / min(ts) for th, ts in results.items()},
        "params": params, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mode": a.mode, "arch": a.arch, "layers": a.layers, "hidden": a.hidden, "heads": a.heads,
        "kv_heads": a.kv_heads, "ffn": a.ffn, "vocab": a.vocab, "batch": a.batch, "seq": a.seq,
        "device": a.device, "torch": torch.__version__,
    }
    if a.mode == "train":
        out["loss"] = a.loss
    if a.device == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
        out["tf32"] = not a.no_tf32
        out["bf16"] = a.bf16
        out["device_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if a.json:
        print(json.dumps(out))
        return
    what = f"{a.mode}" + (f", loss {a.loss}" if a.mode == "train" else "")
    print(f"torch {torch.__version__} {a.device}: {a.arch} L{a.layers} H{a.hidden} heads {a.heads}/{a.kv_heads} "
          f"F{a.ffn} V{a.vocab}, batch {a.batch} × seq {a.seq}, {what}, {params} params")
    print(f"tokens/s {out['tokens_per_s']:.0f} (threads {best_th}; all {out['all']})   "
          f"{out['gflops']:.1f} GFLOP/s   best {out['best_ms']:.1f} ms   mean {out['mean_ms']:.1f} ms   "
          f"peak RSS {out['peak_rss_mb']:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
