#!/usr/bin/env python3
"""Compares the f32 tensors of two .safetensors files, without numpy: every tensor present in both
with the same shape.

Without --moved-from, each tensor within BOUND of the other relative to its scale (its largest
magnitude): max|a - b| <= BOUND * max|a|.

With --moved-from INITIAL (the parameters both training runs started from), as the gradient
accumulation test and docs/PARITY.md compare training: in units of the training's movement,
RMS(a - b) over each tensor <= BOUND x RMS(a - INITIAL) over every parameter. Adam divides each
gradient by its own running magnitude, so an element with a tiny gradient moves a full step on
rounding noise alone: a bound relative to each weight would be meaningless for it. The attention
key biases, whose exact gradient is zero (softmax ignores a shift shared by all keys), hold only
such noise, and are held to --key-bias-bound (default 1: no more than the training's own movement).
Usage: compare_safetensors.py A B BOUND [--moved-from INITIAL [--key-bias-bound X]]
(exit 0: equal within the bounds; 1: not, with the worst tensor)
"""
import json
import struct
import sys
from array import array


def read(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {info['dtype']}, this comparison reads F32 only")
        begin, end = info["data_offsets"]
        values = array("f")
        values.frombytes(data[begin:end])
        tensors[name] = (info["shape"], values)
    return tensors


KEY_BIAS_SUFFIXES = ("attention.self.key.bias", "attention.k_lin.bias")


def is_key_bias(name):
    return name.endswith(KEY_BIAS_SUFFIXES)


def rms(values):
    return (sum(v * v for v in values) / max(len(values), 1)) ** 0.5


def main():
    args = sys.argv[1:]
    initial, key_bias_bound = None, 1.0
    if "--moved-from" in args:
        i = args.index("--moved-from")
        initial = read(args[i + 1])
        del args[i:i + 2]
    if "--key-bias-bound" in args:
        i = args.index("--key-bias-bound")
        key_bias_bound = float(args[i + 1])
        del args[i:i + 2]
    a_path, b_path, bound = args[0], args[1], float(args[2])
    a, b = read(a_path), read(b_path)
    movement = None
    if initial is not None:
        squares, count = 0.0, 0
        for name, (_, values) in a.items():
            if name not in initial:
                print(f"{name}: not in the initial parameters")
                return 1
            for x, x0 in zip(values, initial[name][1]):
                squares += (x - x0) ** 2
            count += len(values)
        movement = (squares / count) ** 0.5 or 1.0
    if set(a) != set(b):
        print(f"different tensors: only in {a_path}: {sorted(set(a) - set(b))}, only in {b_path}: {sorted(set(b) - set(a))}")
        return 1
    worst, worst_name = 0.0, ""
    for name, (shape, values) in a.items():
        other_shape, other = b[name]
        if shape != other_shape:
            print(f"{name}: shape {shape} against {other_shape}")
            return 1
        if movement is None:
            scale = max((abs(v) for v in values), default=0.0) or 1.0
            diff = max((abs(x - y) for x, y in zip(values, other)), default=0.0) / scale
        else:
            n = len(values)
            if is_key_bias(name) or name.endswith("attn.c_attn.bias"):
                # GPT-2's fused c_attn.bias holds the query, key and value biases: the middle third is the key's.
                key = range(n // 3, 2 * n // 3) if name.endswith("c_attn.bias") else range(n)
                noise = rms([values[i] - other[i] for i in key]) / movement
                if noise != noise or noise > key_bias_bound:
                    print(f"{name}: key bias differs by {noise:.3g} x the training's movement (bound {key_bias_bound:g})")
                    return 1
                rest = [i for i in range(n) if i not in key]
                values, other = [values[i] for i in rest], [other[i] for i in rest]
            diff = rms([x - y for x, y in zip(values, other)]) / movement if values else 0.0
        if diff != diff:  # NaN
            print(f"{name}: NaN")
            return 1
        if diff > worst:
            worst, worst_name = diff, name
    unit = "of the training's movement" if movement is not None else "relative to the tensor's scale"
    print(f"worst difference {worst:.3g} {unit} ({worst_name or 'none'}), bound {bound:g}")
    return 0 if worst <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
