#!/usr/bin/env bash
# scripts/gpu/scaling_table.py on a made-up scaling.jsonl (no GPU, no torch): medians over rounds,
# per-GPU rates and scaling efficiency, J per token and per sample, memory per GPU (the largest
# rank's), the ratios against DDP and FSDP at the largest GPU count, the loss check, each target's
# status, the runs left out, two files merged, and a malformed line refused.
# Usage (ctest): bash scaling_table.sh <wattwise-binary> <source-dir> [<shared-data-dir>]
set -euo pipefail
source_dir=$2
table=$source_dir/scripts/gpu/scaling_table.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
MIB = 2 ** 20

def bench(case, side, gpus, rnd, rate, joules_per_item, peak_mib, state_mib=None, parts_mib=None):
    lm = case.startswith("gpt2")
    batch, seq = (16, 1024) if lm else (32, 256)
    steps, elapsed = 100, 10.0
    samples = steps * batch * gpus
    # rate: tokens/s for GPT-2, samples/s otherwise; elapsed follows from it.
    items = samples * seq if lm else samples
    elapsed = items / rate
    r = {"schema": "wattwise-bench/1", "tool": "x", "case": case, "arch": "gpt2" if lm else "distilbert",
         "batch": batch, "seq_len": seq, "steps": steps, "elapsed_s": elapsed, "samples": samples,
         "tokens": samples * seq, "samples_per_s": samples / elapsed, "tokens_per_s": samples * seq / elapsed,
         "energy_j": joules_per_item * items, "peak_memory_bytes": peak_mib * MIB, "device_name": "Test GPU",
         "side": side, "gpus": gpus, "round": rnd}
    if side not in ("wattwise", "pytorch"):
        ranks = []
        for k in range(gpus):
            m = {"rank": k, "peak_memory_bytes": (peak_mib + 10 * k) * MIB}  # rank k holds 10 MiB more
            if state_mib is not None:
                m["model_state_bytes"] = (state_mib + k) * MIB
            if parts_mib is not None:  # only the parts: the table adds them up
                m.update(parameter_bytes=parts_mib[0] * MIB, gradient_bytes=parts_mib[1] * MIB,
                         optimizer_state_bytes=parts_mib[2] * MIB)
            ranks.append(m)
        r["distributed"] = {"ranks": gpus, "memory_per_rank": ranks}
    return r

lines = [{"schema": "wattwise-scaling-meta/1", "command": "scripts/gpu/scaling.sh --gpus 1,2,4", "gpu": "Test GPU, 1.0, 700 W",
          "gpus_present": 4, "date": "2026-12-08T00:00:00Z", "rounds": 2, "min_seconds": 4}]
# GPT-2: ours scale at 96% (ZeRO 0) and 97.5% (ZeRO 2) at 4 GPUs; DDP 100k tokens/s per GPU, FSDP 120k.
for rnd, wiggle in ((1, 1.0), (2, 1.02)):
    lines += [bench("gpt2-train-bf16", "wattwise", 1, rnd, 410e3 * wiggle, 1.6e-3, 7000),
              bench("gpt2-train-bf16", "wattwise-zero0", 1, rnd, 400e3 * wiggle, 1.6e-3, 7000, 1400),
              bench("gpt2-train-bf16", "wattwise-zero2", 1, rnd, 400e3 * wiggle, 1.6e-3, 7000, 1400),
              bench("gpt2-train-bf16", "pytorch", 1, rnd, 130e3 * wiggle, 4e-3, 20000),
              bench("gpt2-train-bf16", "pytorch-ddp", 1, rnd, 125e3 * wiggle, 4e-3, 21000, 1900),
              bench("gpt2-train-bf16", "pytorch-fsdp", 1, rnd, 125e3 * wiggle, 4e-3, 21000, 1900)]
    for g in (2, 4):
        lines += [bench("gpt2-train-bf16", "wattwise-zero0", g, rnd, 400e3 * wiggle * g * 0.96, 1.7e-3, 7100, 1400),
                  bench("gpt2-train-bf16", "wattwise-zero2", g, rnd, 400e3 * wiggle * g * 0.975, 1.7e-3, 6500,
                        None if g == 4 else 1000, (100, 300, 200) if g == 4 else None),
                  bench("gpt2-train-bf16", "pytorch-ddp", g, rnd, 100e3 * wiggle * g, 4e-3, 21000, 1900),
                  bench("gpt2-train-bf16", "pytorch-fsdp", g, rnd, 120e3 * wiggle * g, 4e-3, 20000, 700)]
# DistilBERT: ZeRO 2 missing at 4 GPUs (left out), one round only.
lines += [bench("distilbert-train-bf16", "wattwise-zero0", 1, 1, 3900, 0.030, 2200, 1000),
          bench("distilbert-train-bf16", "wattwise-zero0", 4, 1, 3900 * 4 * 0.90, 0.031, 2300, 1000),
          bench("distilbert-train-bf16", "pytorch-ddp", 4, 1, 1500 * 4, 0.06, 4000, 1000)]
lines.append({"schema": "wattwise-scaling-not-run/1", "part": "bench", "side": "wattwise-zero2", "gpus": 4,
              "case": "distilbert-train-bf16", "round": 1, "reason": "deadline: 20 s left, a run takes about 30 s"})
with open(f"{work}/a.jsonl", "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
# The loss check in a second file (another call): ZeRO 2 on 4 GPUs within 0.5% of both, on 2 GPUs 1% off.
losses = [("wattwise", 1, 0, 3.000), ("wattwise-zero0", 4, 0, 3.003), ("wattwise-zero2", 4, 2, 3.006),
          ("wattwise-zero0", 2, 0, 3.000), ("wattwise-zero2", 2, 2, 3.030)]
with open(f"{work}/b.jsonl", "w") as f:
    for side, g, z, loss in losses:
        f.write(json.dumps({"schema": "wattwise-scaling-loss/1", "side": side, "gpus": g, "zero": z, "steps": 200,
                            "final_loss": loss, "tokens_per_s": 400e3 * g, "model": "gpt2 small"}) + "\n")
PY

python3 "$table" "$work/a.jsonl" "$work/b.jsonl" --out "$work/table.md" --json "$work/summary.json" > "$work/stdout.md"
cmp -s "$work/stdout.md" "$work/table.md" || { echo "FAIL: --out differs from what was printed"; exit 1; }

python3 - "$work/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
MIB = 2 ** 20
rows = {(r["side"], r["gpus"]): r for r in s["cases"]["gpt2-train-bf16"]}
close = lambda a, b: abs(a - b) <= 1e-9 * max(abs(a), abs(b))
z0_4 = rows[("wattwise-zero0", 4)]
# Medians of the two rounds (x1.00 and x1.02), per GPU, efficiency against the side's own 1 GPU.
assert close(z0_4["rate"], 400e3 * 1.01 * 4 * 0.96), z0_4
assert close(z0_4["per_gpu"], 400e3 * 1.01 * 0.96), z0_4
assert close(z0_4["efficiency"], 0.96), z0_4
assert close(z0_4["efficiency_plain"], 400e3 * 0.96 / 410e3), z0_4  # against the plain process
assert close(z0_4["spread"], 0.02 / 1.01), z0_4
assert close(z0_4["energy"], 1.7e-3), z0_4          # J per token
assert z0_4["peak"] == (7100 + 30) * MIB, z0_4      # the largest rank's (rank 3)
assert z0_4["state"] == (1400 + 3) * MIB, z0_4
assert rows[("wattwise-zero2", 4)]["state"] == 600 * MIB  # parameters + gradients + optimizer state
assert rows[("pytorch", 1)]["peak"] == 20000 * MIB and rows[("pytorch", 1)]["state"] is None
assert rows[("pytorch", 1)]["runs"] == 2
d = {(r["side"], r["gpus"]): r for r in s["cases"]["distilbert-train-bf16"]}
assert close(d[("wattwise-zero0", 4)]["energy"], 0.031) and close(d[("wattwise-zero0", 4)]["efficiency"], 0.90)

t = {(x["case"], x["target"]): x for x in s["targets"]}
def status(case, start):
    found = [x for (c, name), x in t.items() if c == case and name.startswith(start)]
    assert len(found) == 1, (case, start, list(t))
    return found[0]["status"], found[0]["value"]
g = "gpt2-train-bf16"
assert status(g, "wattwise ZeRO 0: scaling efficiency >= 95% at 2 GPUs")[0] == "met"
assert status(g, "wattwise ZeRO 2: scaling efficiency >= 95% at 4 GPUs")[0] == "met"
st, v = status(g, "wattwise ZeRO 0 tokens/s >= 1.3x PyTorch DDP's at 4")
assert st == "met" and close(v, 4 * 0.96), (st, v)
st, v = status(g, "wattwise ZeRO 2 tokens/s >= 1.0x PyTorch FSDP")
assert st == "met" and close(v, 4 * 0.975 / 1.2), (st, v)
st, v = status(g, "wattwise ZeRO 0 J/token <= 0.75x PyTorch DDP's at 4")
assert st == "met" and close(v, 1.7e-3 / 4e-3), (st, v)
st, v = status(g, "model state per GPU, ZeRO 2 / ZeRO 0 <= 0.45 at 4")
assert st == "met" and close(v, 600 / 1403), (st, v)
b = "distilbert-train-bf16"
assert status(b, "wattwise ZeRO 0: scaling efficiency >= 95% at 4 GPUs")[0] == "missed"
assert status(b, "wattwise ZeRO 2: scaling efficiency >= 95% at 4 GPUs")[0] == "no data"
st, v = status(b, "wattwise ZeRO 0 samples/s >= 1.3x PyTorch DDP's at 4")
assert st == "met" and close(v, 3900 * 0.9 / 1500), (st, v)
assert status(b, "wattwise ZeRO 2 samples/s >= 1.0x PyTorch FSDP")[0] == "no data"
assert status(b, "model state per GPU")[0] == "no data"
L = "gpt2 loss"
st, v = status(L, "loss of ZeRO 2 at 4 GPU(s) within 0.5% of ZeRO 0")
assert st == "met" and close(v, 3.006 / 3.003 - 1), (st, v)
assert status(L, "loss of ZeRO 2 at 4 GPU(s) within 0.5% of the plain")[0] == "met"
assert status(L, "loss of ZeRO 2 at 2 GPU(s) within 0.5% of ZeRO 0")[0] == "missed"
assert status(L, "loss of ZeRO 2 at 2 GPU(s) within 0.5% of the plain")[0] == "missed"
assert len(s["not_run"]) == 1 and len(s["losses"]) == 5
print("ok: medians, per-GPU rates, efficiencies, energy per item, memory per GPU, targets and loss checks")
PY

md=$work/table.md
for want in "command: \`scripts/gpu/scaling.sh --gpus 1,2,4\`" "Test GPU, 1.0, 700 W, 4 present" \
    "## gpt2-train-bf16" "| side | GPUs | tokens/s | per GPU |" "| samples/s | per GPU |" \
    "| wattwise ZeRO 0 | 4 | 1,551,360 | 387,840 | 2.0% | 96.0% | 93.7% | 1.7000 | 7,130 | 1,403 | 2 |" \
    "At 4 GPU(s), ours / peer:" "| wattwise ZeRO 2 | PyTorch FSDP (SHARD_GRAD_OP) | 3.25 |" \
    "## Loss after 200 steps (gpt2 small" "| wattwise ZeRO 2 | 2 | 2 | 3.0300 | +1.000% | +1.000% |" \
    "## Targets: " "- bench wattwise-zero2 on 4 GPU(s), distilbert-train-bf16, round 1: deadline"; do
  grep -qF -- "$want" "$md" || { echo "FAIL: the table lacks: $want"; cat "$md"; exit 1; }
done
echo "ok: the Markdown table"

# A bench result without the fields scaling.sh adds, and a line that is not JSON: refused with the line.
echo '{"schema": "wattwise-bench/1", "case": "x"}' > "$work/bad.jsonl"
if python3 "$table" "$work/bad.jsonl" > /dev/null 2> "$work/err"; then echo "FAIL: accepted a result without side"; exit 1; fi
grep -q "bad.jsonl:1: a bench result without side and gpus" "$work/err" || { cat "$work/err"; exit 1; }
printf '{"schema": "wattwise-scaling-meta/1"}\nnot json\n' > "$work/bad.jsonl"
if python3 "$table" "$work/bad.jsonl" > /dev/null 2> "$work/err"; then echo "FAIL: accepted a line that is not JSON"; exit 1; fi
grep -q "bad.jsonl:2: not JSON" "$work/err" || { cat "$work/err"; exit 1; }
echo "ok: malformed input refused, naming the line"
