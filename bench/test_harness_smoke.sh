#!/usr/bin/env bash
# Smoke test of the GPU harness on the CPU: one tiny case, one round, wattwise and PyTorch eager
# (torch.compile left out: minutes of C++ compilation on a CPU). Checks the JSON and Markdown it
# writes. Skips (77) when python3 cannot import torch and transformers. Usage: test_harness_smoke.sh WATTWISE
set -uo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
if ! python3 -c "import torch, transformers" >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import torch and transformers"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$here/run_harness.py" --wattwise "$bin" --device cpu --cases bert-train-bf16 --preset tiny --batch 4 \
  --seq-len 16 --precision fp32 --quick --rounds 1 --no-compile --matmul-tflops 1 --out "$work" > "$work/table.md" || exit 1
python3 - "$work" <<'PY'
import glob, json, sys
w = sys.argv[1]
[path] = glob.glob(f"{w}/bench_cpu_*.json")
assert glob.glob(f"{w}/bench_cpu_*.md"), "no Markdown file"
r = json.load(open(path))
tools = sorted(x["tool"] for x in r["runs"])
assert tools == ["pytorch-eager", "wattwise"], tools
ours = next(x for x in r["runs"] if x["tool"] == "wattwise")
peer = next(x for x in r["runs"] if x["tool"] != "wattwise")
for x in (ours, peer):
    assert (x["case"], x["batch"], x["seq_len"], x["precision"], x["mode"]) == ("bert-train-bf16", 4, 16, "fp32", "train"), x
    assert x["samples"] == x["steps"] * 4 and x["samples_per_s"] > 0
# Both sides count the same model FLOPs (C++ and Python formulas) and build the same model.
assert abs(ours["model_flops_per_step"] - peer["model_flops_per_step"]) < 1e-6 * ours["model_flops_per_step"]
assert ours["params"] == peer["params"], (ours["params"], peer["params"])
s = r["summary"]["bert-train-bf16"]
assert s["wattwise"]["samples_per_s"]["n"] == 1 and "mfu" in s["wattwise"]
targets = [t for t in r["targets"] if t["case"] == "bert-train-bf16"]
assert any(t["target"].startswith("samples/s >= 2.5x eager") and t["value"] is not None for t in targets), targets
print("ok: harness wrote runs, medians, ratios and targets; same FLOPs and parameter count on both sides")
PY
grep -q "| bert-train-bf16 | wattwise |" "$work/table.md" || { echo "FAIL: table lacks our row"; exit 1; }
grep -q "Targets met:" "$work/table.md" || { echo "FAIL: table lacks the targets"; exit 1; }
echo "ok: Markdown table printed"
