#!/usr/bin/env python3
"""Fine-tunes all-MiniLM-L6-v2 with wattwise and with PyTorch + transformers from the same start,
side by side on one GPU (results in docs/RESULTS.md).

For each seed: wattwise trains with the recipe (examples/minilm_<task>.toml) and exports its plan
(initial model with the seeded head, examples, batch order); then bench/minilm_pytorch.py replays
that plan. Each whole process is timed and its GPU energy read from NVML's total-energy counter
(A B A B ...). An optional learning-rate sweep (wattwise only, first seed) picks the rate by the
validation metric first.

  python3 bench/minilm_side_by_side.py --wattwise build/wattwise --model MINILM_DIR \
      --data-root DATA --task sst2 --seeds 42 43 44 [--lr-sweep 2e-5 5e-5 1e-4] --out OUT

DATA holds glue/SST-2/{train,dev}.tsv and/or aclImdb.tar.gz (or aclImdb/). Writes
OUT/side_by_side_<task>.json and .md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_pytorch import NvmlEnergy  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_path(task, root):
    if task == "sst2":
        return os.path.join(root, "glue", "SST-2")
    for name in ("aclImdb", "aclImdb.tar.gz"):
        if os.path.exists(os.path.join(root, name)):
            return os.path.join(root, name)
    raise SystemExit(f"side_by_side: no aclImdb or aclImdb.tar.gz under {root}")


def measured(cmd, meter, log_path):
    """Runs cmd; returns (seconds, GPU joules) of the whole process. Fails loudly with its log."""
    e0 = meter.joules() if meter else None
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    joules = meter.joules() - e0 if meter else None
    if rc != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"side_by_side: {' '.join(cmd)} exited with {rc}:\n{tail}")
    return seconds, joules


def newest_run(runs_dir):
    dirs = [os.path.join(runs_dir, d) for d in os.listdir(runs_dir)]
    return max((d for d in dirs if os.path.isdir(d)), key=os.path.getmtime)


def ours_summary(run_dir, seconds, joules):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        m = json.load(f)
    energy = m.get("energy") or {}
    return {
        "run_dir": run_dir,
        "eval_history": [{"epoch": h["epoch"], "accuracy": h["accuracy"]} for h in m["eval_history"]],
        "best_eval_accuracy": m["best"]["value"] if m.get("best") else None,
        "test_accuracy": (m.get("test") or {}).get("accuracy"),
        "train_seconds": m["train"]["seconds"],
        "samples_per_s": m["train"]["samples_per_s"],
        "peak_memory_bytes": m["execution"].get("peak_memory_bytes"),
        # What wattwise itself reports for the whole run (GPU + CPU + RAM, with its carbon factors).
        "reported_kwh": (energy.get("total") or {}).get("kwh"),
        "reported_gco2e": (energy.get("total") or {}).get("gco2e"),
        "reported_gpu_j": (energy.get("total") or {}).get("gpu_j"),
        "process_seconds": seconds, "gpu_energy_j": joules,
        # Where the process's time and joules went: wattwise's own windows (the run window opens
        # once the data is tokenised; the evaluations nest inside training).
        "phases": {name: {"seconds": w.get("duration_s"), "gpu_j": w.get("gpu_j")}
                   for name, w in {**(energy.get("phases") or {}), "run": energy.get("total") or {}}.items()},
    }


def mean_sd(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wattwise", default=os.path.join(ROOT, "build", "wattwise"))
    ap.add_argument("--model", required=True, help="all-MiniLM-L6-v2 folder (scripts/fetch_minilm.py)")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--task", choices=["sst2", "imdb"], required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    ap.add_argument("--lr", type=float, default=None, help="skip the sweep and use this rate")
    ap.add_argument("--lr-sweep", type=float, nargs="*", default=[])
    ap.add_argument("--skip-pytorch", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True)
    ap.add_argument("extra", nargs="*", help="more wattwise overrides, e.g. --train.epochs 2 (after --)")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    meter = NvmlEnergy(None, 0) if args.device.startswith("cuda") else None
    config = os.path.join(ROOT, "examples", f"minilm_{args.task}.toml")
    base = [args.wattwise, "train", "--config", config, "--model.path", args.model,
            "--data.path", data_path(args.task, args.data_root), "--run.device", args.device,
            "--run.progress", "lines"] + args.extra
    runs_dir = os.path.join(args.out, f"runs_{args.task}")
    os.makedirs(runs_dir, exist_ok=True)
    report = {"task": args.task, "config": os.path.relpath(config, ROOT), "extra_overrides": args.extra,
              "seeds": args.seeds, "lr_sweep": [], "pairs": []}

    lr = args.lr
    if lr is None and args.lr_sweep:
        for candidate in args.lr_sweep:
            cmd = base + ["--train.lr", repr(candidate), "--run.seed", str(args.seeds[0]),
                          "--run.output_dir", runs_dir, "--run.name", f"sweep_lr{candidate:g}"]
            seconds, joules = measured(cmd, meter, os.path.join(args.out, f"{args.task}_sweep_{candidate:g}.log"))
            s = ours_summary(newest_run(runs_dir), seconds, joules)
            report["lr_sweep"].append({"lr": candidate, **{k: s[k] for k in ("eval_history", "best_eval_accuracy", "test_accuracy", "process_seconds")}})
            print(f"sweep {args.task} lr {candidate:g}: best eval {s['best_eval_accuracy']:.4f}", flush=True)
        lr = max(report["lr_sweep"], key=lambda r: r["best_eval_accuracy"])["lr"]
        print(f"sweep {args.task}: chose lr {lr:g}", flush=True)
    report["lr"] = lr
    lr_args = ["--train.lr", repr(lr)] if lr is not None else []

    for seed in args.seeds:
        cmd = base + lr_args + ["--run.seed", str(seed), "--run.export_plan", "true", "--run.output_dir", runs_dir,
                                "--run.name", f"{args.task}_seed{seed}"]
        seconds, joules = measured(cmd, meter, os.path.join(args.out, f"{args.task}_wattwise_{seed}.log"))
        ours = ours_summary(newest_run(runs_dir), seconds, joules)
        pair = {"seed": seed, "wattwise": ours}
        print(f"{args.task} seed {seed} wattwise: eval {ours['best_eval_accuracy']:.4f} test {ours['test_accuracy']} "
              f"{seconds:.1f} s {joules} J", flush=True)
        if not args.skip_pytorch:
            out_json = os.path.join(args.out, f"{args.task}_pytorch_{seed}.json")
            cmd = [sys.executable, os.path.join(ROOT, "bench", "minilm_pytorch.py"), ours["run_dir"], "--out", out_json,
                   "--device", args.device]
            seconds, joules = measured(cmd, meter, os.path.join(args.out, f"{args.task}_pytorch_{seed}.log"))
            with open(out_json) as f:
                peer = json.load(f)
            peer["process_seconds"], peer["process_gpu_energy_j"] = seconds, joules
            pair["pytorch"] = peer
            print(f"{args.task} seed {seed} pytorch: eval {peer['best_eval_accuracy']:.4f} test {peer['test_accuracy']} "
                  f"{seconds:.1f} s {joules} J", flush=True)
        report["pairs"].append(pair)
        with open(os.path.join(args.out, f"side_by_side_{args.task}.json"), "w") as f:
            json.dump(report, f, indent=2)

    # Summary over seeds.
    def col(side, key):
        return [p[side].get(key) for p in report["pairs"] if side in p]

    metric = "test_accuracy" if args.task == "imdb" else "best_eval_accuracy"
    summary = {}
    for side, energy_key in (("wattwise", "gpu_energy_j"), ("pytorch", "process_gpu_energy_j")):
        if not col(side, "process_seconds"):
            continue
        first_epoch = [p[side]["eval_history"][0]["accuracy"] for p in report["pairs"] if side in p and p[side]["eval_history"]]
        summary[side] = {"accuracy": mean_sd(col(side, metric)), "first_epoch_eval": mean_sd(first_epoch),
                         "process_seconds": mean_sd(col(side, "process_seconds")),
                         "gpu_energy_j": mean_sd(col(side, energy_key)),
                         "peak_memory_bytes": mean_sd(col(side, "peak_memory_bytes"))}
    if "pytorch" in summary:
        summary["ratios"] = {
            "speedup": summary["pytorch"]["process_seconds"][0] / summary["wattwise"]["process_seconds"][0],
            "energy": (summary["wattwise"]["gpu_energy_j"][0] / summary["pytorch"]["gpu_energy_j"][0]
                       if summary["pytorch"]["gpu_energy_j"][0] else None),
            "accuracy_delta": summary["wattwise"]["accuracy"][0] - summary["pytorch"]["accuracy"][0]}
    report["summary"] = summary
    with open(os.path.join(args.out, f"side_by_side_{args.task}.json"), "w") as f:
        json.dump(report, f, indent=2)

    name = "SST-2 dev accuracy (best epoch)" if args.task == "sst2" else "IMDB test accuracy"
    lines = [f"| seed | wattwise {name} | PyTorch | wattwise s | PyTorch s | wattwise GPU J | PyTorch GPU J |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in report["pairs"]:
        w, t = p["wattwise"], p.get("pytorch", {})
        fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {p['seed']} | {fmt(w.get(metric), '.4f')} | {fmt(t.get(metric), '.4f')} | "
                     f"{fmt(w['process_seconds'], '.1f')} | {fmt(t.get('process_seconds'), '.1f')} | "
                     f"{fmt(w['gpu_energy_j'], '.0f')} | {fmt(t.get('process_gpu_energy_j'), '.0f')} |")
    if "ratios" in summary:
        r = summary["ratios"]
        lines.append("")
        lines.append(f"speedup {r['speedup']:.2f}x, energy ratio {r['energy']:.2f}, accuracy delta {r['accuracy_delta']:+.4f} "
                     f"(wattwise {summary['wattwise']['accuracy'][0]:.4f} ± {summary['wattwise']['accuracy'][1]:.4f}, "
                     f"PyTorch {summary['pytorch']['accuracy'][0]:.4f} ± {summary['pytorch']['accuracy'][1]:.4f}); "
                     f"lr {lr}")
    with open(os.path.join(args.out, f"side_by_side_{args.task}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
