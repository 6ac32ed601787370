#!/usr/bin/env python3
"""The Markdown table of the scaling run (scripts/gpu/scaling.sh): per case, side and GPU count.

Reads one or more scaling.jsonl files (several calls of scaling.sh, e.g. 1 and 2 GPUs in one call
and 4 in the next on the same machine) and prints, per case: throughput in all and per GPU (tokens/s
for GPT-2, samples/s otherwise; medians over rounds, with their spread), scaling efficiency against
the same side's 1-GPU run (and against the plain 1-GPU process of its tool), energy per token or
sample with every GPU's counter summed, peak memory and model-state memory per GPU (the largest rank's);
then the ratios against PyTorch DDP and FSDP at the largest GPU count, the loss check and the targets
of the scaling issue, each met, missed or without data.

  python3 scripts/gpu/scaling_table.py OUT/scaling.jsonl [MORE.jsonl ...] [--out table.md] [--json summary.json]
"""
import argparse
import json
import statistics
import sys

# The sides scaling.sh runs; the plain 1-GPU process each launched side is compared with.
SIDES = ["wattwise", "wattwise-zero0", "wattwise-zero2", "pytorch", "pytorch-ddp", "pytorch-fsdp"]
LABELS = {"wattwise": "wattwise, plain process", "wattwise-zero0": "wattwise ZeRO 0",
          "wattwise-zero2": "wattwise ZeRO 2", "pytorch": "PyTorch, plain process", "pytorch-ddp": "PyTorch DDP",
          "pytorch-fsdp": "PyTorch FSDP (SHARD_GRAD_OP)"}
PLAIN = {"wattwise-zero0": "wattwise", "wattwise-zero2": "wattwise", "pytorch-ddp": "pytorch",
         "pytorch-fsdp": "pytorch"}
OURS = ("wattwise-zero0", "wattwise-zero2")
# The scaling issue's targets: (ours, peer, metric, bound). ZeRO 0 is measured against DDP (both hold
# everything on every GPU), ZeRO 2 against FSDP's SHARD_GRAD_OP (both shard gradients and optimizer state).
EFFICIENCY_MIN = 0.95
PEER_TARGETS = [("wattwise-zero0", "pytorch-ddp", "rate", ">=", 1.3),
                ("wattwise-zero2", "pytorch-fsdp", "rate", ">=", 1.0),
                ("wattwise-zero0", "pytorch-ddp", "energy", "<=", 0.75)]
STATE_RATIO_MAX = 0.45
LOSS_TOLERANCE = 0.005
MIB = 2 ** 20


def load(paths):
    meta, runs, losses, not_run = [], [], [], []
    for path in paths:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except ValueError as e:
                    sys.exit(f"scaling_table: {path}:{n}: not JSON: {e}")
                schema = r.get("schema")
                if schema == "wattwise-scaling-meta/1":
                    meta.append(r)
                elif schema == "wattwise-scaling-loss/1":
                    losses.append(r)
                elif schema == "wattwise-scaling-not-run/1":
                    not_run.append(r)
                elif schema == "wattwise-bench/1":
                    if "side" not in r or "gpus" not in r:
                        sys.exit(f"scaling_table: {path}:{n}: a bench result without side and gpus "
                                 "(scaling.sh adds them)")
                    runs.append(r)
                else:
                    sys.exit(f"scaling_table: {path}:{n}: unknown schema {schema!r}")
    return meta, runs, losses, not_run


def is_lm(r):
    return r.get("arch") == "gpt2"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_rank_max(r, key):
    """The largest rank's figure (memory per GPU); a result without per-rank figures: its own (rank 0's)."""
    ranks = (r.get("distributed") or {}).get("memory_per_rank") or []
    values = [model_state(m) if key == "model_state_bytes" else m.get(key) for m in ranks]
    values = [v for v in values if v is not None]
    if values:
        return max(values)
    return r.get(key)


def model_state(m):
    if m.get("model_state_bytes") is not None:
        return m["model_state_bytes"]
    parts = [m.get(k) for k in ("parameter_bytes", "gradient_bytes", "optimizer_state_bytes")]
    return sum(parts) if all(p is not None for p in parts) else None


def summarise(runs):
    """{case: {(side, gpus): row}} with medians over rounds; efficiencies against 1 GPU."""
    groups = {}
    for r in runs:
        groups.setdefault(r["case"], {}).setdefault((r["side"], int(r["gpus"])), []).append(r)
    summary = {}
    for case, cells in groups.items():
        lm = is_lm(next(iter(cells.values()))[0])
        key, per = ("tokens_per_s", "tokens") if lm else ("samples_per_s", "samples")
        rows = {}
        for (side, gpus), rs in cells.items():
            rates = [r[key] for r in rs if r.get(key)]
            rate = median(rates)
            rows[(side, gpus)] = {
                "case": case, "side": side, "gpus": gpus, "runs": len(rs), "rate": rate,
                "spread": (max(rates) - min(rates)) / rate if rate and len(rates) > 1 else None,
                "per_gpu": rate / gpus if rate else None,
                "energy": median([r["energy_j"] / r[per] if r.get("energy_j") is not None and r.get(per) else None
                                  for r in rs]),
                "peak": median([per_rank_max(r, "peak_memory_bytes") for r in rs]),
                "state": median([per_rank_max(r, "model_state_bytes") for r in rs]),
                "ranks": sorted({(r.get("distributed") or {}).get("ranks", 1) for r in rs}),
                "device": sorted({r.get("device_name") for r in rs if r.get("device_name")}),
            }
        for row in rows.values():
            one = rows.get((row["side"], 1))
            plain = rows.get((PLAIN.get(row["side"], row["side"]), 1))
            row["efficiency"] = row["per_gpu"] / one["rate"] if one and one["rate"] and row["per_gpu"] else None
            row["efficiency_plain"] = (row["per_gpu"] / plain["rate"]
                                       if plain and plain["rate"] and row["per_gpu"] else None)
        summary[case] = {"lm": lm, "rows": rows}
    return summary


def largest_n(rows):
    launched = [g for (side, g) in rows if side in OURS or side.startswith("pytorch-")]
    return max(launched) if launched else None


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(summary, losses):
    out = []

    def add(case, target, value, ok, note=""):
        out.append({"case": case, "target": target, "value": value,
                    "status": "no data" if value is None else ("met" if ok else "missed"), "note": note})

    for case, s in summary.items():
        rows, lm = s["rows"], s["lm"]
        unit = "tokens/s" if lm else "samples/s"
        per = "token" if lm else "sample"
        counts = sorted({g for (side, g) in rows if side in OURS and g > 1})
        for side in OURS:
            if not counts:
                add(case, f"{LABELS[side]}: scaling efficiency >= {EFFICIENCY_MIN:.0%} on more than 1 GPU", None,
                    False, "no run on more than 1 GPU")
            for g in counts:
                row = rows.get((side, g))
                e = row["efficiency"] if row else None
                add(case, f"{LABELS[side]}: scaling efficiency >= {EFFICIENCY_MIN:.0%} at {g} GPUs", e,
                    e is not None and e >= EFFICIENCY_MIN)
        n = largest_n(rows)
        for ours, peer, metric, op, bound in PEER_TARGETS:
            a, b = rows.get((ours, n)), rows.get((peer, n))
            field = "rate" if metric == "rate" else "energy"
            v = ratio(a and a[field], b and b[field])
            what = unit if metric == "rate" else f"J/{per}"
            ok = v is not None and (v >= bound if op == ">=" else v <= bound)
            add(case, f"{LABELS[ours]} {what} {op} {bound}x {LABELS[peer]}'s at {n} GPU(s)", v, ok)
        a, b = rows.get(("wattwise-zero2", n)), rows.get(("wattwise-zero0", n))
        v = ratio(a and a["state"], b and b["state"])
        add(case, f"model state per GPU, ZeRO 2 / ZeRO 0 <= {STATE_RATIO_MAX} at {n} GPU(s)", v,
            v is not None and v <= STATE_RATIO_MAX)
    by = {(l["side"], int(l["gpus"])): l for l in losses}
    plain = by.get(("wattwise", 1))
    for g in sorted({int(l["gpus"]) for l in losses if l["side"] != "wattwise"}):
        z2, z0 = by.get(("wattwise-zero2", g)), by.get(("wattwise-zero0", g))
        for ref, name in ((z0, f"ZeRO 0 at {g} GPU(s)"), (plain, "the plain 1-GPU run")):
            v = abs(z2["final_loss"] / ref["final_loss"] - 1) if z2 and ref and ref["final_loss"] else None
            add("gpt2 loss", f"loss of ZeRO 2 at {g} GPU(s) within {LOSS_TOLERANCE:.1%} of {name}", v,
                v is not None and v <= LOSS_TOLERANCE)
    if not losses:
        add("gpt2 loss", f"loss of ZeRO 2 within {LOSS_TOLERANCE:.1%} of ZeRO 0 and of 1 GPU", None, False,
            "no loss runs")
    return out


def fmt(v, spec="{:,.0f}", none="-"):
    return none if v is None else spec.format(v)


def markdown(meta, summary, losses, not_run, checks):
    lines = ["# Weak scaling: wattwise data parallel against PyTorch DDP and FSDP", ""]
    for m in meta:
        lines.append(f"- {m.get('date', '?')}: {m.get('gpu', '?')}, {m.get('gpus_present', '?')} present; "
                     f"host {m.get('host_cpu', '?')}; {m.get('wattwise', '?')}; torch {m.get('torch', '?')}; "
                     f"{m.get('rounds', '?')} round(s), {m.get('min_seconds', '?')} s windows"
                     f"{'; smoke shapes' if m.get('smoke') else ''}")
        lines.append(f"  command: `{m.get('command', '?')}`")
    devices = sorted({d for s in summary.values() for row in s["rows"].values() for d in row["device"]})
    if devices:
        lines.append(f"- measured on: {', '.join(devices)}")
    lines.append("")
    for case, s in summary.items():
        rows, lm = s["rows"], s["lm"]
        unit, per = ("tokens/s", "mJ/token") if lm else ("samples/s", "J/sample")
        scale = 1e3 if lm else 1.0
        lines += [f"## {case}", "",
                  f"| side | GPUs | {unit} | per GPU | spread | efficiency vs its 1 GPU | vs plain 1 GPU | {per} "
                  f"| peak memory per GPU (MiB) | model state per GPU (MiB) | runs |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        order = sorted(rows, key=lambda k: (SIDES.index(k[0]) if k[0] in SIDES else len(SIDES), k[0], k[1]))
        for side, g in order:
            r = rows[(side, g)]
            lines.append(
                f"| {LABELS.get(side, side)} | {g} | {fmt(r['rate'], '{:,.1f}' if not lm else '{:,.0f}')} "
                f"| {fmt(r['per_gpu'], '{:,.1f}' if not lm else '{:,.0f}')} | {fmt(r['spread'], '{:.1%}')} "
                f"| {fmt(r['efficiency'], '{:.1%}')} | {fmt(r['efficiency_plain'], '{:.1%}')} "
                f"| {fmt(r['energy'] and r['energy'] * scale, '{:.4f}')} | {fmt(r['peak'] and r['peak'] / MIB)} "
                f"| {fmt(r['state'] and r['state'] / MIB)} | {r['runs']} |")
        n = largest_n(rows)
        if n is not None:
            lines += ["", f"At {n} GPU(s), ours / peer:", "",
                      f"| ours | peer | {unit} | {per} | peak memory per GPU | model state per GPU |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for ours in OURS:
                for peer in ("pytorch-ddp", "pytorch-fsdp"):
                    a, b = rows.get((ours, n)), rows.get((peer, n))
                    if not a or not b:
                        continue
                    lines.append(f"| {LABELS[ours]} | {LABELS[peer]} | {fmt(ratio(a['rate'], b['rate']), '{:.2f}')} "
                                 f"| {fmt(ratio(a['energy'], b['energy']), '{:.2f}')} "
                                 f"| {fmt(ratio(a['peak'], b['peak']), '{:.2f}')} "
                                 f"| {fmt(ratio(a['state'], b['state']), '{:.2f}')} |")
        lines.append("")
    if losses:
        steps = sorted({l["steps"] for l in losses})
        models = sorted({l.get("model", "gpt2") for l in losses})
        lines += [f"## Loss after {', '.join(map(str, steps))} steps ({', '.join(models)}, tiny shakespeare, "
                  "dropout off)", "",
                  "| side | GPUs | ZeRO | final training loss | vs ZeRO 0, same GPUs | vs plain 1 GPU | tokens/s |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        by = {(l["side"], int(l["gpus"])): l for l in losses}
        plain = by.get(("wattwise", 1))
        for l in sorted(losses, key=lambda l: (int(l["gpus"]), l["side"])):
            z0 = by.get(("wattwise-zero0", int(l["gpus"])))
            rel = lambda ref: fmt(l["final_loss"] / ref["final_loss"] - 1 if ref else None, "{:+.3%}")  # noqa: E731
            lines.append(f"| {LABELS.get(l['side'], l['side'])} | {l['gpus']} | "
                         f"{l['zero'] if l['side'] != 'wattwise' else '-'} | {l['final_loss']:.4f} | "
                         f"{rel(z0) if l['side'] != 'wattwise' else '-'} | {rel(plain)} | {fmt(l.get('tokens_per_s'))} |")
        lines.append("")
    met = sum(c["status"] == "met" for c in checks)
    lines += [f"## Targets: {met} of {len(checks)} met", "", "| case | target | value | status |",
              "| --- | --- | --- | --- |"]
    for c in checks:
        v = c["value"]
        shown = "-" if v is None else (f"{v:.1%}" if "efficiency" in c["target"] else
                                       f"{v:.3%}" if "loss" in c["target"] else f"{v:.3f}")
        lines.append(f"| {c['case']} | {c['target']} | {shown} | {c['status']}"
                     f"{' (' + c['note'] + ')' if c['note'] else ''} |")
    if not_run:
        lines += ["", "## Not run", ""]
        for x in not_run:
            lines.append(f"- {x.get('part')} {x.get('side')} on {x.get('gpus')} GPU(s), {x.get('case')}, "
                         f"round {x.get('round')}: {x.get('reason')}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jsonl", nargs="+", help="scaling.jsonl files of scripts/gpu/scaling.sh")
    ap.add_argument("--out", help="also write the Markdown here")
    ap.add_argument("--json", help="write the summary, the loss runs and the targets as JSON here")
    args = ap.parse_args(argv)
    meta, runs, losses, not_run = load(args.jsonl)
    summary = summarise(runs)
    checks = targets(summary, losses)
    text = markdown(meta, summary, losses, not_run, checks)
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": {case: [dict(row) for row in s["rows"].values()] for case, s in summary.items()},
                       "losses": losses, "targets": checks, "not_run": not_run}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
