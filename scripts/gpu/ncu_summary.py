#!/usr/bin/env python3
"""Sums the kernel durations of an `ncu --csv --metrics gpu__time_duration.sum` listing per kernel
name and prints the top kernels with their share of the total (scripts/gpu/run.sh's profile step).
With --details it reads an `ncu --csv --page details --section ...` listing instead and prints
every section metric, averaged over the launches, one column per kernel name.

    python3 scripts/gpu/ncu_summary.py ncu.csv [--top 25]
    python3 scripts/gpu/ncu_summary.py ncu_sections.csv --details
"""
import argparse
import collections
import csv
import io
import sys


def read_rows(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    # ncu prints its own "==PROF==" lines and the program's output before the CSV header.
    start = text.find('"ID"')
    if start < 0:
        sys.exit(f"{path}: no ncu CSV header (\"ID\",...) found")
    return csv.DictReader(io.StringIO(text[start:]))


def short_name(row):
    """flash_dq_mma_kernel<bf16, 64, 4> out of ncu's full demangled signature."""
    name = row.get("Kernel Name", "?").replace("(anonymous namespace)::", "").replace("void ", "")
    name = name.split("(")[0].replace("__nv_bfloat16", "bf16").replace("__half", "f16")
    head, _, args = name.partition("<")
    return head.split("::")[-1] + ("<" + args if args else "")


def details(rows):
    """Section metrics averaged per kernel name: one row per (section, metric), one column per kernel."""
    sums, counts, units, kernels, order = {}, collections.Counter(), {}, [], []
    for row in rows:
        try:
            value = float(row["Metric Value"].replace(",", ""))
        except (KeyError, ValueError):
            continue
        name = short_name(row)
        if name not in kernels:
            kernels.append(name)
        key = (row.get("Section Name", ""), row.get("Metric Name", "?"))
        if key not in units:
            order.append(key)
            units[key] = row.get("Metric Unit", "")
        sums[key, name] = sums.get((key, name), 0.0) + value
        counts[key, name] += 1
    if not kernels:
        sys.exit("no numeric section metrics")
    print(f"{'section / metric':58} " + " ".join(f"{k[:40]:>40}" for k in kernels))
    for key in order:
        cells = [f"{sums[key, k] / counts[key, k]:40.4g}" if counts[key, k] else f"{'-':>40}" for k in kernels]
        print(f"{(key[0][:18] + ' / ' + key[1])[:48]:48} {units[key][:9]:>9} " + " ".join(cells))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--details", action="store_true", help="a --page details listing: section metrics per kernel")
    args = ap.parse_args()
    rows = read_rows(args.csv)
    if args.details:
        details(rows)
        return
    total_ns = collections.Counter()
    calls = collections.Counter()
    for row in rows:
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        try:
            value = float(row["Metric Value"].replace(",", ""))
        except (KeyError, ValueError):
            continue
        name = short_name(row)[:90]
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
