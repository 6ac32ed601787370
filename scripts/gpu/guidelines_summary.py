#!/usr/bin/env python3
"""The short summary of one `wattwise ablate` folder that scripts/gpu/run.sh's guidelines step adds
to summary.txt: per arm, the quality and the energy, time and examples (tokens) to the ablation's
target, each as a ratio to the baseline over the seeds both completed, and whether each change
meets issue 30's bounds. It reads the run folders themselves, so an ablation that the deadline cut
short is summed up over the runs that completed.

  python3 scripts/gpu/guidelines_summary.py ABLATION_DIR [--energy-ratio R] [--tokens-or-time-ratio R]

--energy-ratio R: a change meets the bound when its quality is within the spec's tolerance of the
  baseline's and its energy to target is at most R x the baseline's (MiniLM: 0.6).
--tokens-or-time-ratio R: a change meets it when its tokens (examples) or its time to target is
  at most R x the baseline's (GPT-2: 0.8).
Language modelling: also the tokens and time to each baseline seed's own best validation loss,
counted from the evaluation history and train_log.csv (every step's tokens: train.log_every 1).
"""
import argparse
import csv
import glob
import json
import os
import statistics
import sys


def read_runs(ablation):
    """{arm: {seed: run}} of the completed runs; run = metrics.json plus its folder."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(ablation, "runs", "*", "metrics.json"))):
        m = json.load(open(path))
        if m["run"].get("status") != "completed":
            continue
        arm, _, seed = m["run"]["name"].rpartition("_s")
        m["_dir"] = os.path.dirname(path)
        runs.setdefault(arm, {})[int(seed)] = m  # a later folder (a rerun) wins
    return runs


def to_target(m, lm):
    """(energy J, seconds, examples or tokens) to the ablation's target; None when not reached."""
    t = m.get("target") or {}
    if not t.get("reached"):
        return None
    return t["energy_j"], t["seconds"], t["tokens"] if lm else t["examples"]


def step_tokens(m):
    """{step: (tokens trained up to and including it, training clock at its end)} from train_log.csv."""
    rows = list(csv.DictReader(open(os.path.join(m["_dir"], "train_log.csv"))))
    block = m["data"].get("block_size") or m["train"]["tokens_per_step"] // m["train"]["batch_size"]
    fixed = m["train"].get("tokens_per_step") if m["train"].get("grad_accum") != "auto" else None
    out, tokens = {}, 0
    for r in rows:
        step = int(r["step"])
        tokens = step * fixed if fixed else tokens + int(float(r["effective_batch"])) * block
        out[step] = (tokens, float(r["elapsed_s"]))
    if not fixed and len(out) != m["train"]["steps"]:
        return None  # a step without its row: the tokens cannot be counted (train.log_every > 1)
    return out


def first_at_or_below(m, loss):
    """(step, tokens, seconds) of the first evaluation with a loss at or below `loss`, or None."""
    steps = step_tokens(m)
    if steps is None:
        return None
    for e in m["eval_history"]:
        if e["loss"] <= loss and e["step"] in steps:
            return (e["step"],) + steps[e["step"]]
    return None


def ratio(pairs):
    """Ratio of the means over the paired seeds, with the per-seed ratios' range."""
    if not pairs:
        return None
    arm, base = [a for a, _ in pairs], [b for _, b in pairs]
    each = [a / b for a, b in pairs if b]
    return statistics.mean(arm) / statistics.mean(base), min(each), max(each)


def fmt_ratio(r):
    return "-" if r is None else f"{r[0]:.3f}x [{r[1]:.3f}..{r[2]:.3f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ablation")
    ap.add_argument("--energy-ratio", type=float)
    ap.add_argument("--tokens-or-time-ratio", type=float)
    a = ap.parse_args()
    plan = json.load(open(os.path.join(a.ablation, "ablation_plan.json")))
    metric, target, tolerance = plan["metric"], plan.get("target") or "", plan["tolerance"]
    arms = [arm["name"] for arm in plan["arms"]]
    runs = read_runs(a.ablation)
    base = runs.get("baseline", {})
    done = sum(len(v) for v in runs.values())
    total = len(arms) * len(plan["seeds"])
    lower_better = metric in ("loss", "perplexity", "mse")
    points = 1 if lower_better else 100  # accuracy-like scores in points, losses in their own unit
    lm = any(m["data"].get("block_size") for arm in runs.values() for m in arm.values())
    unit = "tokens" if lm else "examples"
    print(f"guidelines {plan['name']}: {done} of {total} runs completed ({os.path.basename(a.ablation)}); "
          f"target {target or '-'}, tolerance {tolerance}{'' if lower_better else ' points'}")
    if not base:
        print("  no completed baseline run: nothing to compare")
        return 0
    print(f"  {'arm':<18} {'seeds':>5} {metric:>9} {'delta':>8}  {'reached':>7}  "
          f"{'energy to target':<26} {'time to target':<26} {unit + ' to target':<26} whole-run energy")
    verdicts = []
    for arm in arms:
        rs = runs.get(arm, {})
        if not rs:
            print(f"  {arm:<18} {0:>5}  (no completed run)")
            continue
        seeds = sorted(set(rs) & set(base))
        quality = statistics.mean(r["eval"][metric] for r in rs.values())
        delta = statistics.mean((rs[s]["eval"][metric] - base[s]["eval"][metric]) * points for s in seeds) if seeds else None
        reached = sum(to_target(r, lm) is not None for r in rs.values())
        pairs = [(to_target(rs[s], lm), to_target(base[s], lm)) for s in seeds]
        pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
        r_energy, r_time, r_count = (ratio([(x[i], y[i]) for x, y in pairs]) for i in range(3))
        r_whole = ratio([(rs[s]["energy"]["total"]["energy_j"], base[s]["energy"]["total"]["energy_j"]) for s in seeds])
        d = "" if arm == "baseline" or delta is None else f"{delta:+.2f}"
        print(f"  {arm:<18} {len(rs):>5} {quality:>9.4f} {d:>8}  {reached:>3}/{len(rs):<3}  "
              f"{fmt_ratio(r_energy):<26} {fmt_ratio(r_time):<26} {fmt_ratio(r_count):<26} {fmt_ratio(r_whole)}")
        if arm == "baseline":
            continue
        within = delta is not None and (delta <= tolerance if lower_better else delta >= -tolerance)
        if a.energy_ratio is not None:
            ok = within and r_energy is not None and r_energy[0] <= a.energy_ratio and len(pairs) == len(seeds)
            verdicts.append(f"  {arm}: {metric} {d or '-'} (bound {'+' if lower_better else '-'}{tolerance}), energy to "
                            f"target {fmt_ratio(r_energy)} (bound {a.energy_ratio}x), {len(pairs)} of {len(seeds)} "
                            f"seed pairs reached it: {'met' if ok else 'not met'}")
        if a.tokens_or_time_ratio is not None:
            best = min(x for x in (r_count and r_count[0], r_time and r_time[0]) if x is not None) if pairs else None
            ok = best is not None and best <= a.tokens_or_time_ratio and len(pairs) == len(seeds)
            verdicts.append(f"  {arm}: {unit} to target {fmt_ratio(r_count)}, time {fmt_ratio(r_time)} (bound "
                            f"{a.tokens_or_time_ratio}x either), {len(pairs)} of {len(seeds)} seed pairs reached it: "
                            f"{'met' if ok else 'not met'}")
    if verdicts:
        print(f"  issue 30's bound, per change (ratios: mean over the paired seeds [range of the seeds' ratios]):")
        print("\n".join(verdicts))
    if lm:
        # The target is the fixed-k run's own validation loss: each baseline seed's best,
        # and the first evaluation of each run of the same seed at or below it.
        print(f"  to each baseline seed's best validation loss (first evaluation at or below it; tokens counted from "
              f"train_log.csv, seconds on the training clock at that step):")
        pairs = {arm: [] for arm in arms if arm != "baseline"}  # ((tokens, s), (baseline's tokens, s)) per seed
        for s in sorted(base):
            best = min(e["loss"] for e in base[s]["eval_history"])
            b = first_at_or_below(base[s], best)
            if b is None:
                print(f"    seed {s}: baseline best {best:.4f}; its train_log.csv lacks steps (train.log_every 1 needed)")
                continue
            line = f"    seed {s}: baseline best {best:.4f} at step {b[0]}, {b[1]:,} tokens, {b[2]:.1f} s"
            for arm in pairs:
                r = runs.get(arm, {}).get(s)
                if r is None:
                    continue
                x = first_at_or_below(r, best)
                if x is None:
                    line += f"; {arm}: not reached (best {min(e['loss'] for e in r['eval_history']):.4f})"
                    continue
                pairs[arm].append((x[1:], b[1:]))
                line += f"; {arm}: step {x[0]}, {x[1]:,} tokens ({x[1] / b[1]:.3f}x), {x[2]:.1f} s ({x[2] / b[2]:.3f}x)"
            print(line)
        for arm, p in pairs.items():
            n = sum(1 for s in base if s in runs.get(arm, {}))
            if not n:
                continue
            r_tokens = ratio([(x[0], y[0]) for x, y in p])
            r_time = ratio([(x[1], y[1]) for x, y in p])
            verdict = ""
            if a.tokens_or_time_ratio is not None:
                ok = len(p) == n and min(r_tokens[0], r_time[0]) <= a.tokens_or_time_ratio if p else False
                verdict = f" (bound {a.tokens_or_time_ratio}x either): {'met' if ok else 'not met'}"
            print(f"  {arm} to the baseline's best loss: tokens {fmt_ratio(r_tokens)}, time {fmt_ratio(r_time)}, "
                  f"{len(p)} of {n} seeds reached it{verdict}")
        for arm in arms:
            for s, r in sorted(runs.get(arm, {}).items()):
                aa = r["train"].get("adaptive_accumulation")
                if aa:
                    print(f"    {arm} seed {s}: mean k {aa['mean_grad_accum']:.2f}, steps by k "
                          f"{json.dumps(aa['steps_by_grad_accum'], sort_keys=True)}, {r['train']['tokens']:,} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
