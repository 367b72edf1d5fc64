#!/usr/bin/python3
"""Independent reader of a Megatron mmap indexed dataset, written from the
format description (not from the Go code), used by data's tests.

Usage: read_idx.py PREFIX  ->  JSON on stdout:
  {"dtype": "uint16", "sequences": [[...], ...], "doc_idx": [...],
   "documents": [[...tokens of document 0...], ...]}
"""
import json
import struct
import sys

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64,
          6: np.float64, 7: np.float32, 8: np.uint16}


def read(prefix):
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    assert idx[:9] == MAGIC, "bad magic"
    (version,) = struct.unpack_from("<Q", idx, 9)
    assert version == 1, "bad version"
    code = idx[17]
    dtype = DTYPES[code]
    s, d = struct.unpack_from("<QQ", idx, 18)
    off = 34
    lengths = np.frombuffer(idx, dtype="<i4", count=s, offset=off)
    off += 4 * s
    pointers = np.frombuffer(idx, dtype="<i8", count=s, offset=off)
    off += 8 * s
    doc_idx = np.frombuffer(idx, dtype="<i8", count=d, offset=off)
    off += 8 * d
    assert off == len(idx), "trailing bytes"
    binbuf = np.memmap(prefix + ".bin", mode="r", dtype=np.uint8) if s else b""
    itemsize = np.dtype(dtype).itemsize
    seqs = []
    for n, p in zip(lengths, pointers):
        a = np.frombuffer(binbuf, dtype=np.dtype(dtype).newbyteorder("<"), count=int(n), offset=int(p))
        seqs.append([int(x) for x in a])
        assert int(p) + int(n) * itemsize <= len(binbuf)
    docs = []
    for i in range(len(doc_idx) - 1):
        toks = []
        for j in range(int(doc_idx[i]), int(doc_idx[i + 1])):
            toks.extend(seqs[j])
        docs.append(toks)
    return {"dtype": np.dtype(dtype).name, "sequences": seqs,
            "doc_idx": [int(x) for x in doc_idx], "documents": docs}


if __name__ == "__main__":
    json.dump(read(sys.argv[1]), sys.stdout)
