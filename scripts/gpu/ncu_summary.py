#!/usr/bin/env python3
"""Sums the kernel durations of an `ncu --csv --metrics gpu__time_duration.sum` listing per kernel
name and prints the top kernels with their share of the total (the GPU sessions' profile step).

    python3 scripts/gpu/ncu_summary.py ncu.csv [--top 25]
"""
import argparse
import collections
import csv
import io
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    text = open(args.csv, encoding="utf-8", errors="replace").read()
    # ncu prints its own "==PROF==" lines and the program's output before the CSV header.
    start = text.find('"ID"')
    if start < 0:
        sys.exit(f"{args.csv}: no ncu CSV header (\"ID\",...) found")
    rows = csv.DictReader(io.StringIO(text[start:]))
    total_ns = collections.Counter()
    calls = collections.Counter()
    for row in rows:
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        try:
            value = float(row["Metric Value"].replace(",", ""))
        except (KeyError, ValueError):
            continue
        name = row.get("Kernel Name", "?")
        name = name.split("(")[0][:90]
        total_ns[name] += value
        calls[name] += 1
    all_ns = sum(total_ns.values())
    if not all_ns:
        sys.exit(f"{args.csv}: no kernel durations")
    print(f"{sum(calls.values())} kernels, {all_ns / 1e6:.2f} ms in all")
    print(f"{'ms':>9} {'share':>6} {'calls':>6} {'us/call':>8}  kernel")
    for name, ns in total_ns.most_common(args.top):
        print(f"{ns / 1e6:9.3f} {100 * ns / all_ns:5.1f}% {calls[name]:6d} {ns / 1e3 / calls[name]:8.1f}  {name}")


if __name__ == "__main__":
    main()
