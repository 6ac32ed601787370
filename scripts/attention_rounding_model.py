#!/usr/bin/env python3
"""How far the fused bf16 attention backward may fall from the exact one on a real checkpoint.

Runs all-MiniLM-L6-v2's forward in numpy (f32) on an IMDB-shaped batch of random vocabulary ids
(the shape and lengths of tests/models/execution_test.cpp's real-checkpoint tests), takes layer L's
queries, keys and values rounded to bf16, and models what the mma kernels round: the forward's
unnormalised probabilities and its output in bf16, delta = dO . O from that output, then dQ, dK
and dV against the exact backward (delta = sum_j P dP) for a random output gradient that is zero
at padding. Its relative errors are the rounding floor the GPU tests compare the kernels with.

    python3 scripts/attention_rounding_model.py "$(python3 scripts/fetch_minilm.py)" 4
"""
import json, struct, numpy as np, sys
if len(sys.argv) < 2:
    sys.exit(__doc__)
path = sys.argv[1] + "/model.safetensors"
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; hdr = json.loads(f.read(n)); base = 8 + n
    f.seek(0); raw = f.read()
W = {}
for k, v in hdr.items():
    if k == "__metadata__": continue
    a, b = v["data_offsets"]; dt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}[v["dtype"]]
    W[k] = np.frombuffer(raw[base + a: base + b], dtype=dt).reshape(v["shape"]).astype(np.float32)
pre = "" if "embeddings.word_embeddings.weight" in W else "bert."
def bf16(x):
    x = np.asarray(x, np.float32); u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)
def ln(x, w, b, eps=1e-12):
    m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b
from math import erf
def gelu(x): return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)).astype(np.float32))
rng = np.random.default_rng(17)
B, T, H, D = 8, 256, 12, 32
C = H * D
ids = np.zeros((B, T), np.int64); mask = np.zeros((B, T), np.int64)
for b in range(B):
    L = T if b % 2 == 0 else 40 + int(rng.integers(0, T - 40))
    ids[b, :L] = rng.integers(1000, 30000, L); ids[b, 0] = 101; ids[b, L - 1] = 102; mask[b, :L] = 1
g = lambda k: W[pre + k]
x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:T][None] + g("embeddings.token_type_embeddings.weight")[0]
x = ln(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
scale = 1 / np.sqrt(D)
def attn_inputs(l, x):
    p = f"encoder.layer.{l}.attention.self."
    q = x @ g(p + "query.weight").T + g(p + "query.bias")
    k = x @ g(p + "key.weight").T + g(p + "key.bias")
    v = x @ g(p + "value.weight").T + g(p + "value.bias")
    sh = lambda t: t.reshape(B, T, H, D).transpose(0, 2, 1, 3)
    return sh(q), sh(k), sh(v)
def layer(l, x):
    q, k, v = attn_inputs(l, x)
    s = q @ k.transpose(0, 1, 3, 2) * scale + np.where(mask[:, None, None, :] > 0, 0, -1e30)
    p = np.exp(s - s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
    o = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
    pp = f"encoder.layer.{l}."
    a = ln(o @ g(pp + "attention.output.dense.weight").T + g(pp + "attention.output.dense.bias") + x,
           g(pp + "attention.output.LayerNorm.weight"), g(pp + "attention.output.LayerNorm.bias"))
    h = gelu(a @ g(pp + "intermediate.dense.weight").T + g(pp + "intermediate.dense.bias"))
    return ln(h @ g(pp + "output.dense.weight").T + g(pp + "output.dense.bias") + a,
              g(pp + "output.LayerNorm.weight"), g(pp + "output.LayerNorm.bias"))
target = int(sys.argv[2]) if len(sys.argv) > 2 else 4
for l in range(target): x = layer(l, x)
q, k, v = (bf16(t) for t in attn_inputs(target, bf16(x)))
valid = mask[:, None, None, :] > 0
s = q @ k.transpose(0, 1, 3, 2) * scale
s = np.where(valid, s, -np.inf)
m = s.max(-1, keepdims=True); e = np.exp(s - m); l_ = e.sum(-1, keepdims=True)
P = e / l_                                   # exact probabilities (the backward's recompute)
O_mma = bf16((bf16(e) @ v) / l_)             # mma forward: rounded unnormalised p, sum of unrounded
print("max P per row: median %.5f, rows with max P > 0.999: %.1f%%" % (np.median(P.max(-1)), 100 * np.mean(P.max(-1) > 0.999)))
print("|q| mean %.2f, |mean q over tokens| %.2f, |k| %.2f, |mean k| %.2f" % (
    np.linalg.norm(q, axis=-1).mean(), np.linalg.norm(q.mean(2), axis=-1).mean(), np.linalg.norm(k, axis=-1).mean(), np.linalg.norm(k.mean(2), axis=-1).mean()))
dO = bf16(rng.standard_normal((B, H, T, D)).astype(np.float32) * 1e-3 * (mask[:, None, :, None] > 0))
dP = dO @ v.transpose(0, 1, 3, 2)
def grads(delta, Pm):
    dS = Pm * (dP - delta)
    return (dS @ k) * scale, (dS.transpose(0, 1, 3, 2) @ q) * scale, Pm.transpose(0, 1, 3, 2) @ dO
exact = grads((P * dP).sum(-1, keepdims=True), P)
fused = grads((dO * O_mma).sum(-1, keepdims=True), P)
fused_b = grads((dO * O_mma).sum(-1, keepdims=True), bf16(P))
rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
for name, got in (("delta from bf16 O", fused), ("same, P rounded", fused_b)):
    print("%-20s dQ %.3e  dK %.3e  dV %.3e   key-bias grad |sum_j dK_j| %.3e vs exact %.3e" % (
        name, rel(got[0], exact[0]), rel(got[1], exact[1]), rel(got[2], exact[2]),
        np.linalg.norm(got[1].sum(2)), np.linalg.norm(exact[1].sum(2))))
