#!/usr/bin/env bash
# Smoke test of the GPT-2/BERT harness on the CPU, tiny shapes, one round. Usage:
#   test_harness_smoke.sh WATTWISE ours    the gpt2 case, wattwise only (--no-peers): needs no torch
#   test_harness_smoke.sh WATTWISE peers   bert and gpt2 cases, wattwise and PyTorch eager (torch.compile
#                                          left out: minutes of C++ compilation on a CPU); skips (77)
#                                          when python3 cannot import torch and transformers
# Checks the JSON and Markdown the harness writes.
set -uo pipefail
bin=$(realpath "$1")
part=${2:-peers}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$part" = ours ]; then
  python3 "$here/run_harness.py" --wattwise "$bin" --device cpu --cases gpt2-train-bf16 --preset tiny --batch 2 \
    --seq-len 16 --precision fp32 --quick --rounds 1 --no-peers --matmul-tflops 1 --out "$work" > "$work/table.md" || exit 1
  python3 - "$work" <<'PY' || exit 1
import glob, json, sys
w = sys.argv[1]
[path] = glob.glob(f"{w}/bench_cpu_*.json")
r = json.load(open(path))
assert [x["tool"] for x in r["runs"]] == ["wattwise"], r["runs"]
x = r["runs"][0]
assert (x["case"], x["arch"], x["preset"], x["batch"], x["seq_len"], x["precision"], x["mode"]) == \
    ("gpt2-train-bf16", "gpt2", "tiny", 2, 16, "fp32", "train"), x
assert x["tokens"] == x["steps"] * 2 * 16 and x["tokens_per_s"] > 0 and x["final_loss"] > 0, x
assert abs(x["j_per_token"] * x["tokens"] - x["energy_j"]) < 1e-9 * x["energy_j"], x
# The FLOP count of docs/PERFORMANCE.md: 6·P·tokens + 12·L·C·T·tokens, P = V·C + L·(12C² + 13C) + 2C.
V, C, L, B, T = 50257, 64, 2, 2, 16
P = V * C + L * (12 * C * C + 13 * C) + 2 * C
flops = 6 * P * B * T + 12 * L * C * T * B * T
assert abs(x["model_flops_per_step"] - flops) < 1e-9 * flops, (x["model_flops_per_step"], flops)
assert x["params"] == P + 64 * C, x["params"]  # plus the position embeddings (n_positions 64)
assert r["lm_cases"] == ["gpt2-train-bf16"]
s = r["summary"]["gpt2-train-bf16"]["wattwise"]
assert s["tokens_per_s"]["n"] == 1 and s["j_per_token"]["n"] == 1 and "mfu" in s
targets = {t["target"]: t for t in r["targets"] if t["case"] == "gpt2-train-bf16"}
assert targets["tokens/s >= 400,000"]["value"] == s["tokens_per_s"]["median"], targets
assert targets["J/token <= 0.75x compile"]["status"] == "no data", targets
print("ok: gpt2 case measured, FLOPs and parameters as documented, per-token summary and targets")
PY
  grep -q "| case | tool | tokens/s median" "$work/table.md" || { echo "FAIL: no per-token table"; exit 1; }
  grep -q "| gpt2-train-bf16 | wattwise |" "$work/table.md" || { echo "FAIL: table lacks our row"; exit 1; }
  grep -q "samples/s median" "$work/table.md" && { echo "FAIL: a per-sample table without classifier cases"; exit 1; }
  echo "ok: Markdown table printed"
  exit 0
fi

if ! python3 -c "import torch, transformers" >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import torch and transformers"
  exit 77
fi
python3 "$here/run_harness.py" --wattwise "$bin" --device cpu --cases bert-train-bf16,gpt2-train-bf16 --preset tiny \
  --batch 4 --seq-len 16 --precision fp32 --quick --rounds 1 --no-compile --matmul-tflops 1 --out "$work" > "$work/table.md" || exit 1
python3 - "$work" <<'PY'
import glob, json, sys
w = sys.argv[1]
[path] = glob.glob(f"{w}/bench_cpu_*.json")
assert glob.glob(f"{w}/bench_cpu_*.md"), "no Markdown file"
r = json.load(open(path))
for case in ("bert-train-bf16", "gpt2-train-bf16"):
    runs = [x for x in r["runs"] if x["case"] == case]
    tools = sorted(x["tool"] for x in runs)
    assert tools == ["pytorch-eager", "wattwise"], (case, tools)
    ours = next(x for x in runs if x["tool"] == "wattwise")
    peer = next(x for x in runs if x["tool"] != "wattwise")
    for x in (ours, peer):
        assert (x["case"], x["batch"], x["seq_len"], x["precision"], x["mode"]) == (case, 4, 16, "fp32", "train"), x
        assert x["samples"] == x["steps"] * 4 and x["samples_per_s"] > 0
    # Both sides count the same model FLOPs (C++ and Python formulas) and build the same model.
    assert abs(ours["model_flops_per_step"] - peer["model_flops_per_step"]) < 1e-6 * ours["model_flops_per_step"]
    assert ours["params"] == peer["params"], (case, ours["params"], peer["params"])
    assert ours["arch"] == peer["arch"], (ours["arch"], peer["arch"])
s = r["summary"]["bert-train-bf16"]
assert s["wattwise"]["samples_per_s"]["n"] == 1 and "mfu" in s["wattwise"]
targets = [t for t in r["targets"] if t["case"] == "bert-train-bf16"]
assert any(t["target"].startswith("samples/s >= 2.5x eager") and t["value"] is not None for t in targets), targets
targets = [t for t in r["targets"] if t["case"] == "gpt2-train-bf16"]
assert any(t["target"] == "tokens/s >= 400,000" and t["value"] is not None for t in targets), targets
print("ok: harness wrote runs, medians, ratios and targets; same FLOPs and parameter count on both sides")
PY
[ $? -eq 0 ] || exit 1
grep -q "| bert-train-bf16 | wattwise |" "$work/table.md" || { echo "FAIL: table lacks our bert row"; exit 1; }
grep -q "| gpt2-train-bf16 | pytorch-eager |" "$work/table.md" || { echo "FAIL: table lacks the gpt2 peer row"; exit 1; }
grep -q "Targets met:" "$work/table.md" || { echo "FAIL: table lacks the targets"; exit 1; }
echo "ok: Markdown table printed"
