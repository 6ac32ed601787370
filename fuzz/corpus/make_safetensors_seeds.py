#!/usr/bin/env python3
"""Writes the seed files in fuzz/corpus/safetensors/ (standard library only, deterministic).

  python3 fuzz/corpus/make_safetensors_seeds.py

Each seed is a small, hand-built safetensors file: valid ones in the shapes real checkpoints take,
and a few near misses so the fuzzer starts next to every validation branch.
"""
import json
import os
import struct

out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")


def build(entries, metadata=None, pad=True, order=None):
    """entries: list of (name, dtype, shape, data bytes); offsets laid out in list order."""
    header, buffer = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buffer), len(buffer) + len(data)]}
        buffer += data
    if order:
        header = {k: header[k] for k in order}
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


def raw_file(header, buffer):
    return struct.pack("<Q", len(header)) + header + buffer


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


seeds = {
    "empty": build([]),
    "one_f32": build([("weight", "F32", [2, 2], f32(1, -2, 0.5, 3))], {"format": "pt"}),
    "mixed_dtypes": build([
        ("w16", "F16", [3], struct.pack("<3H", 0x3C00, 0x7C00, 0x0001)),
        ("wbf", "BF16", [2], struct.pack("<2H", 0x3F80, 0x7FC0)),
        ("ids", "I64", [2], struct.pack("<2q", -1, 2**40)),
        ("n", "I32", [1, 1], struct.pack("<i", 7)),
        ("mask", "BOOL", [3], b"\x01\x00\x01"),
        ("bytes", "U8", [2], b"\xff\x00"),
        ("empty", "F32", [0, 4], b""),
        ("scalar", "F32", [], f32(2.5)),
    ], {"format": "pt", "note": "seed"}),
    "unpadded_unordered": build([("a", "F32", [1], f32(1)), ("b", "F16", [1], struct.pack("<H", 0x3E00))],
                                pad=False, order=["b", "a"]),
    "gpt2_like": build([("wte.weight", "F32", [4, 2], f32(*range(8))), ("h.0.ln_1.bias", "F32", [2], f32(0, 0)),
                        ("h.0.attn.c_attn.weight", "F16", [2, 6], b"\x00\x3c" * 12)], {"format": "pt"}),
    # Near misses: each breaks one rule.
    "gap": raw_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(0, 1)),
    "size_mismatch": build([("a", "F32", [3], f32(1, 2))]),
    "metadata_number": raw_file(b'{"__metadata__":{"a":1}}', b""),
}

os.makedirs(out_dir, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out_dir, name + ".safetensors"), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out_dir}")
