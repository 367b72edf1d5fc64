#!/usr/bin/env python3
"""An independent reader of TensorBoard event files, written from the
TFRecord and Event/Summary protobuf definitions (tensorflow/core/util/event.proto,
tensorflow/core/framework/summary.proto), with no TensorFlow: it checks every
record's masked CRC-32C and prints the scalars as JSON lines
{"step": N, "tag": T, "value": V}, after a first line {"file_version": ...}."""
import json
import struct
import sys


def crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(b, i):
    shift = result = 0
    while True:
        x = b[i]
        i += 1
        result |= (x & 0x7F) << shift
        if not x & 0x80:
            return result, i
        shift += 7


def fields(b):
    """(field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        elif wt == 2:
            n, i = varint(b, i)
            v = b[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def main(path):
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
        hdr = data[i:i + 8]
        (n,) = struct.unpack("<Q", hdr)
        (hcrc,) = struct.unpack("<I", data[i + 8:i + 12])
        if hcrc != masked(hdr):
            raise SystemExit("bad length CRC at %d" % i)
        rec = data[i + 12:i + 12 + n]
        (dcrc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if dcrc != masked(rec):
            raise SystemExit("bad data CRC at %d" % i)
        i += 16 + n
        step = 0
        for num, wt, v in fields(rec):
            if num == 2 and wt == 0:
                step = v
            elif num == 3 and wt == 2:
                print(json.dumps({"file_version": v.decode()}))
            elif num == 5 and wt == 2:
                for snum, swt, sv in fields(v):
                    if snum != 1 or swt != 2:
                        continue
                    tag, val = None, None
                    for vnum, vwt, vv in fields(sv):
                        if vnum == 1 and vwt == 2:
                            tag = vv.decode()
                        elif vnum == 2 and vwt == 5:
                            (val,) = struct.unpack("<f", vv)
                    print(json.dumps({"step": step, "tag": tag, "value": val}))


if __name__ == "__main__":
    main(sys.argv[1])
