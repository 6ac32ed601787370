#!/usr/bin/env python3
"""PyTorch eager CPU inference of random-init DistilBERT/BERT-base classifiers, the peer of
bench/bench_inference_cpu (same shapes: batch 32, length 128, full-length random ids).

  taskset -c 0,1 python3 scripts/bench_cpu_inference_torch.py --threads 2
Prints ms per example (median of --repeats timed forwards after a warm-up).
"""
import argparse
import statistics
import time

import torch
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name, model in (("distilbert-base", DistilBertForSequenceClassification(DistilBertConfig())),
                        ("bert-base", BertForSequenceClassification(BertConfig()))):
        model.eval()
        ids = torch.randint(1, 30522, (args.batch, args.length))
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask)
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model(input_ids=ids, attention_mask=mask)
                times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3 / args.batch
        print(f"pytorch-eager {name} batch {args.batch} len {args.length} threads {args.threads}: {ms:.2f} ms/example")


if __name__ == "__main__":
    main()
