#!/usr/bin/python3
"""Writes the committed fixtures megatron_u16.{bin,idx} and megatron_i32.{bin,idx}
the way Megatron-LM's IndexedDatasetBuilder does (doc_idx starts [0] and gets
len(lengths) appended per document; pointers are running byte offsets), plus
fixtures.json with the expected documents. Independent of the Go writer.

Run from this directory: /usr/bin/python3 write_idx.py
"""
import json
import struct

import numpy as np

CODES = {np.uint16: 8, np.int32: 4}


def build(prefix, dtype, docs):
    lengths, doc_idx = [], [0]
    with open(prefix + ".bin", "wb") as f:
        for doc in docs:  # a document is a list of sequences
            for seq in doc:
                f.write(np.array(seq, dtype=dtype).astype(np.dtype(dtype).newbyteorder("<")).tobytes())
                lengths.append(len(seq))
            doc_idx.append(len(lengths))
    size = np.dtype(dtype).itemsize
    pointers, p = [], 0
    for n in lengths:
        pointers.append(p)
        p += n * size
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", CODES[dtype]))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(np.array(lengths, dtype="<i4").tobytes())
        f.write(np.array(pointers, dtype="<i8").tobytes())
        f.write(np.array(doc_idx, dtype="<i8").tobytes())


DOCS = {
    "megatron_u16": (np.uint16, [[[1, 2, 3, 0]], [[65535, 7, 0]], [[5], [6, 6], []], [[0]]]),
    "megatron_i32": (np.int32, [[[100000, 2, 0]], [[-1, 2147483647]], [[9, 9, 9, 0]]]),
}

if __name__ == "__main__":
    out = {}
    for name, (dtype, docs) in DOCS.items():
        build(name, dtype, docs)
        out[name] = {
            "dtype": np.dtype(dtype).name,
            "sequences": [s for d in docs for s in d],
            "documents": [[t for s in d for t in s] for d in docs],
        }
    with open("fixtures.json", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
