#!/usr/bin/env python3
"""Writes an SST-2-shaped GLUE folder of generated sentences: DIR/train.tsv and DIR/dev.tsv
(sentence<TAB>label, alternating labels, each sentence 3-12 filler words and one word of its
label's sentiment), reproducible from SEED.

Usage: make_sst2_like.py DIR SEED TRAIN_ROWS DEV_ROWS
"""
import os
import random
import sys

directory, seed, train_rows, dev_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
filler = "a the film movie was is very really plot acting".split()
words = {1: "good great fine".split(), 0: "bad awful poor".split()}
os.makedirs(directory, exist_ok=True)
for split, n in (("train", train_rows), ("dev", dev_rows)):
    with open(os.path.join(directory, f"{split}.tsv"), "w") as f:
        f.write("sentence\tlabel\n")
        for i in range(n):
            w = [r.choice(filler) for _ in range(r.randint(3, 12))]
            w.insert(r.randint(0, len(w)), r.choice(words[i % 2]))
            f.write(" ".join(w) + f"\t{i % 2}\n")
