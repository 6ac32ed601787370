#!/usr/bin/env python3
"""End-to-end parity of `wattwise predict` with Hugging Face transformers, both directions.

1. transformers writes tiny random-init BERT and DistilBERT classifiers (real bert-base-uncased
   vocabulary size) with save_pretrained, plus the real tokenizer files; `wattwise predict` has
   never seen them. Our logits on real texts (SST-2 dev sentences, sentence pairs and IMDB reviews
   truncated to the max length) must match transformers' within 1e-4, and our input ids must equal
   the fast tokenizer's.
2. `wattwise init-model` writes a model; transformers loads it with no missing or unexpected
   tensors and reproduces our logits within 1e-4.

Exit 0 on success, 1 on a mismatch, 77 when torch/transformers or the data are unavailable.
  python3 scripts/check_predict_parity.py --wattwise build/wattwise --data ../shared/data --work /tmp/pp
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile

try:
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, BertConfig,
                              BertForSequenceClassification, DistilBertConfig,
                              DistilBertForSequenceClassification)
    from transformers.utils import logging as hf_logging
except ImportError as e:  # pragma: no cover
    print(f"skip: torch/transformers not importable ({e})")
    sys.exit(77)

TOLERANCE = 1e-4


def load_texts(data, limit_imdb=64):
    examples = []
    dev = os.path.join(data, "glue", "SST-2", "dev.tsv")
    with open(dev, encoding="utf-8") as f:
        next(f)
        sentences = [line.rstrip("\n").split("\t")[0] for line in f]
    examples += [{"text": s} for s in sentences]
    examples += [{"text": a, "text_pair": b} for a, b in zip(sentences[:100:2], sentences[1:100:2])]
    with tarfile.open(os.path.join(data, "aclImdb.tar.gz")) as tar:
        for member in tar:
            if member.isfile() and "/test/pos/" in member.name and member.name.endswith(".txt"):
                examples.append({"text": tar.extractfile(member).read().decode("utf-8")})
                if len(examples) >= len(sentences) + 50 + limit_imdb:
                    break
    return examples


def hf_logits(model_dir, examples, max_length, batch_size=32):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).float().eval()
    ids, logits = [None] * len(examples), [None] * len(examples)
    # Padded batches, each all single texts or all pairs (the tokenizer takes one kind per call).
    singles = [i for i, e in enumerate(examples) if e.get("text_pair") is None]
    pairs = [i for i, e in enumerate(examples) if e.get("text_pair") is not None]
    for group in (singles, pairs):
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            texts = [examples[i]["text"] for i in chunk]
            if group is pairs:
                enc = tok(texts, [examples[i]["text_pair"] for i in chunk], truncation=True,
                          max_length=max_length, padding=True, return_tensors="pt")
            else:
                enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            if model.config.model_type == "distilbert":
                enc.pop("token_type_ids", None)
            with torch.no_grad():
                out = model(**enc).logits
            for k, i in enumerate(chunk):
                ids[i] = enc["input_ids"][k][enc["attention_mask"][k].bool()].tolist()
                logits[i] = out[k].tolist()
    return ids, logits


def wattwise_predict(binary, model_dir, examples, work, max_length):
    inp = os.path.join(work, "input.jsonl")
    out = os.path.join(work, "predictions.jsonl")
    with open(inp, "w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(e) + "\n")
    subprocess.run([binary, "predict", "--model", model_dir, "--input", inp, "--output", out,
                    "--max-length", str(max_length), "--batch-size", "16", "--runs-dir", os.path.join(work, "runs")], check=True)
    rows = [json.loads(line) for line in open(out, encoding="utf-8")]
    return [r["input_ids"] for r in rows], [r["logits"] for r in rows]


def compare(label, ours, theirs):
    ours_ids, ours_logits = ours
    ref_ids, ref_logits = theirs
    assert len(ours_ids) == len(ref_ids), f"{label}: {len(ours_ids)} outputs vs {len(ref_ids)}"
    bad_ids = sum(a != b for a, b in zip(ours_ids, ref_ids))
    worst = max(abs(a - b) for x, y in zip(ours_logits, ref_logits) for a, b in zip(x, y))
    ok = bad_ids == 0 and worst <= TOLERANCE
    print(f"{label}: {len(ours_ids)} examples, id mismatches {bad_ids}, max |logit diff| {worst:.2e} "
          f"(tolerance {TOLERANCE:g}) -> {'OK' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wattwise", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    tokenizer_dir = os.path.join(args.data, "tokenizers", "bert-base-uncased")
    if not os.path.isdir(tokenizer_dir) or not os.path.exists(os.path.join(args.data, "aclImdb.tar.gz")):
        print(f"skip: data folder {args.data} lacks the tokenizer or IMDB")
        return 77
    hf_logging.set_verbosity_error()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    examples = load_texts(args.data)
    all_ok = True
    torch.manual_seed(0)
    for arch in ("bert", "distilbert"):
        if arch == "bert":
            model = BertForSequenceClassification(BertConfig(
                hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                num_labels=2, initializer_range=0.2))
        else:
            model = DistilBertForSequenceClassification(DistilBertConfig(
                dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=2, initializer_range=0.2))
        hf_dir = os.path.join(args.work, f"hf_{arch}")
        model.save_pretrained(hf_dir)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
            if os.path.exists(os.path.join(tokenizer_dir, name)):
                shutil.copy(os.path.join(tokenizer_dir, name), hf_dir)
        ours = wattwise_predict(args.wattwise, hf_dir, examples, args.work, args.max_length)
        all_ok &= compare(f"HF-written {arch}, read by wattwise", ours,
                          hf_logits(hf_dir, examples, args.max_length))

        ww_dir = os.path.join(args.work, f"ww_{arch}")
        subprocess.run([args.wattwise, "init-model", "--arch", arch, "--preset", "tiny", "--tokenizer",
                        tokenizer_dir, "-o", ww_dir, "--num-labels", "3", "--seed", "5"], check=True)
        _, info = AutoModelForSequenceClassification.from_pretrained(ww_dir, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v and k != "error_msgs"} 
        if problems or info.get("error_msgs"):
            print(f"wattwise-written {arch}: transformers reported {info} -> FAIL")
            all_ok = False
        ours = wattwise_predict(args.wattwise, ww_dir, examples, args.work, args.max_length)
        all_ok &= compare(f"wattwise-written {arch}, read by transformers", ours,
                          hf_logits(ww_dir, examples, args.max_length))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
