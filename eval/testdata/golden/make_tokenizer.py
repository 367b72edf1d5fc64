#!/usr/bin/python3
"""Writes tokenizer.json: a byte-level BPE (GPT-2 layout) with a few
dozen English merges and <|endoftext|> as BOS/EOS, for eval's golden tests.
Hand-made for this project; run from this directory with /usr/bin/python3.
"""
import json


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


b2u = bytes_to_unicode()
vocab = {b2u[b]: b for b in range(256)}
merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"),
          ("Ġ", "s"), ("r", "e"), ("a", "t"), ("Ġ", "w"), ("e", "n"), ("Ġ", "c"), ("o", "u"),
          ("i", "s"), ("Ġ", "o"), ("s", "t"), ("Ġ", "b"), ("Ġ", "p"), ("Ġ", "f"), ("Ġ", "m"),
          ("Ġ", "d"), ("a", "n"), ("an", "d"), ("Ġ", "and"), ("in", "g"), ("Ġ", "h"), ("e", "s"),
          ("o", "r"), ("Ġo", "f"), ("Ġ", "A"), ("Ġ", "B"), ("Ġ", "C"), ("Ġ", "D"), ("Ċ", "Ċ"),
          ("Q", "u"), ("Qu", "es"), ("Ques", "t"), ("Quest", "i"), ("Questi", "on"), ("A", "n"),
          ("An", "s"), ("Ans", "w"), ("Answ", "er"), ("#", "#"), ("##", "##"), ("Ġ", "1"), ("Ġ", "2")]
for a, b in merges:
    vocab[a + b] = len(vocab)
eot = len(vocab)
tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": eot, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True},
    ],
    "normalizer": None,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
        "vocab": vocab,
        "merges": [a + " " + b for a, b in merges],
    },
}
with open("tokenizer.json", "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
print("vocab", len(vocab) + 1)
