#!/usr/bin/env python3
"""Checks that a model folder saved by `wattwise train` loads in Hugging Face transformers unchanged
and gives the same predictions as `wattwise predict` on the same texts.

  python3 bench/check_saved_model.py --wattwise build/wattwise --model RUN/best_model \
      --texts RUN/plan/eval.jsonl [--limit 500] [--max-length 128] [--device cpu] [--work DIR]

The model must be a plain *ForSequenceClassification (pooling cls-pooler, the Hugging Face head);
a model saved with another pooling (config.json "wattwise_pooling") is run with that pooling on
transformers' encoder and says so. Prints the agreement and the largest logit difference; exit 0
when every prediction agrees and logits are within --tolerance, 1 otherwise, 77 when torch or
transformers cannot be imported.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging
except ImportError as e:
    print(f"skip: torch/transformers not importable ({e})")
    sys.exit(77)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wattwise", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True, help="JSONL with a 'text' field per line (a plan's eval.jsonl)")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--work", default="")
    args = ap.parse_args(argv)

    hf_logging.set_verbosity_error()
    with open(args.texts, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][: args.limit]
    if not rows:
        raise SystemExit(f"check_saved_model: {args.texts} has no examples")
    work = args.work or tempfile.mkdtemp(prefix="ww_saved_")
    os.makedirs(work, exist_ok=True)
    inp = os.path.join(work, "texts.jsonl")
    with open(inp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r["text"]}) + "\n")
    out = os.path.join(work, "pred.jsonl")
    cmd = [args.wattwise, "predict", "--model", args.model, "--input", inp, "--output", out,
           "--max-length", str(args.max_length), "--device", args.device, "--runs-dir", os.path.join(work, "runs")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"check_saved_model: {' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    with open(out) as f:
        ours = [json.loads(line) for line in f if line.strip()]

    with open(os.path.join(args.model, "config.json")) as f:
        pooling = json.load(f).get("wattwise_pooling", "cls-pooler")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    base = getattr(model, model.base_model_prefix)
    agree, worst = 0, 0.0
    with torch.no_grad():
        for r, o in zip(rows, ours):
            enc = tokenizer(r["text"], truncation=True, max_length=args.max_length, return_tensors="pt")
            if pooling == "cls-pooler":
                logits = model(**enc).logits[0]
            else:
                h = base(**enc).last_hidden_state
                pooled = h.mean(1) if pooling == "mean" else h[:, 0]
                logits = model.classifier(pooled)[0]
            ref = logits.tolist()
            worst = max(worst, max(abs(a - b) for a, b in zip(ref, o["logits"])))
            agree += int(max(range(len(ref)), key=ref.__getitem__) == o["label"])
    n = len(rows)
    print(f"transformers vs wattwise predict on {n} texts ({pooling} pooling): "
          f"{agree}/{n} predictions agree, max |logit difference| {worst:.2e}")
    sys.exit(0 if agree == n and worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
