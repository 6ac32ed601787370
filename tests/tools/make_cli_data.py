#!/usr/bin/env python3
"""Writes the generated data of the training command-line tests into the current folder, the same
every time: tok/vocab.txt (a 20-word WordPiece vocabulary), train.tsv (EXAMPLES sentiment examples:
filler words around one word that decides the label, labels alternating) and text.txt (400 lines of
English-like text for GPT-2).
Usage: make_cli_data.py EXAMPLES
"""
import os
import random
import sys

examples = int(sys.argv[1])
os.makedirs("tok", exist_ok=True)
with open("tok/vocab.txt", "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                      "a the film movie was is very really plot acting good great fine bad awful poor".split()) + "\n")
r = random.Random(1)
filler = "a the film movie was is very really plot acting".split()
words = {1: "good great fine".split(), 0: "bad awful poor".split()}
with open("train.tsv", "w") as f:
    f.write("text\tlabel\n")
    for i in range(examples):
        label = i % 2
        w = [r.choice(filler) for _ in range(r.randint(3, 8))]
        w.insert(r.randint(0, len(w)), r.choice(words[label]))
        f.write(" ".join(w) + "\t" + str(label) + "\n")
vocab = "the king and queen of a castle said unto thee my lord what is this night day sword love".split()
with open("text.txt", "w") as f:
    for line in range(400):
        f.write(" ".join(r.choice(vocab) for _ in range(r.randint(4, 12))).capitalize() + ".\n")
