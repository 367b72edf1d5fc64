#!/usr/bin/python3
"""Writes torch_halves.safetensors + torch_halves.json: an independent check of
minitron's f32→bf16/f16 rounding and bf16/f16→f32 decoding against PyTorch.

The safetensors file is written by hand (no safetensors package here) with an
UNPADDED header, so the reader's unaligned fallback path runs on real data.
Run with Debian's torch: /usr/bin/python3 gen_torch_fixture.py
"""
import json
import struct

import torch

g = torch.Generator().manual_seed(0)
vals = torch.cat([
    torch.randn(500, generator=g),
    torch.randn(200, generator=g) * 1e-5,   # f16 subnormal range
    torch.randn(100, generator=g) * 3e4,    # near f16 overflow
    torch.tensor([0.0, -0.0, 1.0, -2.0, 65504.0, 65519.0, 65520.0, 1e6, -1e6,
                  2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 6.1e-5, 1.00390625,
                  1.01171875, 3.4e38, float("inf"), float("-inf")]),
]).float()
# Exact ties between neighbouring bf16 / f16 values.
b = torch.randn(100, generator=g).bfloat16()
b_next = (b.view(torch.int16) + 1).view(torch.bfloat16)
h = torch.randn(100, generator=g).half()
h_next = (h.view(torch.int16) + 1).view(torch.float16)
vals = torch.cat([vals, (b.float() + b_next.float()) / 2, (h.float() + h_next.float()) / 2])

tensors = {
    "f32": vals.clone().reshape(-1),
    "bf16": vals.bfloat16().reshape(-1),
    "f16": vals.half().reshape(-1),
}
header, blobs, off = {"__metadata__": {"format": "pt", "source": "torch " + torch.__version__}}, [], 0
for name, t in tensors.items():
    raw = t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.float32 else t.numpy().tobytes()
    header[name] = {"dtype": {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}[t.dtype],
                    "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
hb = json.dumps(header, separators=(",", ":")).encode()
if len(hb) % 2 == 0:
    hb += b" "  # odd length: data starts misaligned on purpose
with open("torch_halves.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hb)))
    f.write(hb)
    for raw in blobs:
        f.write(raw)

def bits32(t):
    return [int(x) & 0xFFFFFFFF for x in t.float().view(torch.int32).tolist()]

with open("torch_halves.json", "w") as f:
    json.dump({
        "f32_bits": bits32(vals),
        # torch's rounding of each f32 value, as 16-bit patterns
        "bf16_bits": [int(x) & 0xFFFF for x in tensors["bf16"].view(torch.int16).tolist()],
        "f16_bits": [int(x) & 0xFFFF for x in tensors["f16"].view(torch.int16).tolist()],
        # torch's decoding of those back to f32
        "bf16_as_f32_bits": bits32(tensors["bf16"]),
        "f16_as_f32_bits": bits32(tensors["f16"]),
    }, f)
print("wrote", len(vals), "values")
