#!/usr/bin/env bash
# Smoke test of the GPT-2/BERT harness on the CPU, tiny shapes. Usage:
#   test_harness_smoke.sh WATTWISE ours    the gpt2 case, wattwise only (--no-peers): needs no torch
#   test_harness_smoke.sh WATTWISE peers   bert and gpt2 cases, 2 rounds, wattwise and PyTorch eager
#                                          through the persistent worker (torch.compile left out:
#                                          minutes of C++ compilation on a CPU); then a failing case
#                                          and a worker that dies; then --one-shot-peers. Skips (77)
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
    --seq-len 16 --precision fp32 --quick --rounds 1 --no-peers --matmul-tflops 1 --matmul-pj-per-flop 0.9 \
    --out "$work" > "$work/table.md" || exit 1
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
assert "logical cores" in r["host_cpu"], r.get("host_cpu")  # the peers' speed depends on the host
assert f"Host: {r['host_cpu']}" in open(f"{w}/table.md").read()
s = r["summary"]["gpt2-train-bf16"]["wattwise"]
assert s["tokens_per_s"]["n"] == 1 and s["j_per_token"]["n"] == 1 and "mfu" in s
targets = {t["target"]: t for t in r["targets"] if t["case"] == "gpt2-train-bf16"}
assert targets["tokens/s >= 400,000"]["value"] == s["tokens_per_s"]["median"], targets
assert targets["J/token <= 0.75x compile"]["status"] == "no data", targets
# The energy floor: FLOPs per token (the run's own count) times the given 0.9 pJ/FLOP.
f = r["energy_floors"]["gpt2-train-bf16"]
per_token = flops / (B * T)
assert f["per"] == "token" and abs(f["flops_per_item"] - per_token) < 1e-6 * per_token, (f, per_token)
assert abs(f["floor_j"] - per_token * 0.9e-12) < 1e-9 * f["floor_j"], f
print("ok: gpt2 case measured, FLOPs and parameters as documented, per-token summary, targets, energy floor")
PY
  grep -q "| case | tool | tokens/s median" "$work/table.md" || { echo "FAIL: no per-token table"; exit 1; }
  grep -q "| gpt2-train-bf16 | wattwise |" "$work/table.md" || { echo "FAIL: table lacks our row"; exit 1; }
  grep -q "samples/s median" "$work/table.md" && { echo "FAIL: a per-sample table without classifier cases"; exit 1; }
  grep -q "| gpt2-train-bf16 | 0.0199 |" "$work/table.md" || { echo "FAIL: no energy-floor row"; exit 1; }
  echo "ok: Markdown table printed"
  exit 0
fi

if ! python3 -c "import torch, transformers" >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import torch and transformers"
  exit 77
fi
tiny=(--device cpu --preset tiny --batch 4 --seq-len 16 --precision fp32 --quick --matmul-tflops 1 --no-compile)
python3 "$here/run_harness.py" --wattwise "$bin" --cases bert-train-bf16,gpt2-train-bf16 --rounds 2 "${tiny[@]}" \
  --out "$work" > "$work/table.md" 2> "$work/harness.log" || { cat "$work/harness.log"; exit 1; }
python3 - "$work" <<'PY'
import glob, json, sys
w = sys.argv[1]
[path] = glob.glob(f"{w}/bench_cpu_*.json")
assert glob.glob(f"{w}/bench_cpu_*.md"), "no Markdown file"
r = json.load(open(path))
for case in ("bert-train-bf16", "gpt2-train-bf16"):
    runs = [x for x in r["runs"] if x["case"] == case]
    rounds = sorted((x["tool"], x["round"]) for x in runs)
    assert rounds == [("pytorch-eager", 1), ("pytorch-eager", 2), ("wattwise", 1), ("wattwise", 2)], (case, rounds)
    ours = next(x for x in runs if x["tool"] == "wattwise")
    peers = [x for x in runs if x["tool"] != "wattwise"]
    for x in [ours] + peers:
        assert (x["case"], x["batch"], x["seq_len"], x["precision"], x["mode"]) == (case, 4, 16, "fp32", "train"), x
        assert x["samples"] == x["steps"] * 4 and x["samples_per_s"] > 0
    # The worker builds the case in round 1 and keeps it for round 2.
    assert peers[0]["build_s"] > 0 and peers[1]["build_s"] == 0, [(x["round"], x["build_s"]) for x in peers]
    # Both sides count the same model FLOPs (C++ and Python formulas) and build the same model.
    peer = peers[0]
    assert abs(ours["model_flops_per_step"] - peer["model_flops_per_step"]) < 1e-6 * ours["model_flops_per_step"]
    assert ours["params"] == peer["params"], (case, ours["params"], peer["params"])
    assert ours["arch"] == peer["arch"], (ours["arch"], peer["arch"])
assert len(r["timing"]["worker_starts_s"]["eager"]) == 1, r["timing"]  # one eager worker for both cases
assert set(r["timing"]["cases"]) == {"bert-train-bf16", "gpt2-train-bf16"} and r["timing"]["total_s"] > 0
s = r["summary"]["bert-train-bf16"]
assert s["wattwise"]["samples_per_s"]["n"] == 2 and s["pytorch-eager"]["samples_per_s"]["n"] == 2
assert "mfu" in s["wattwise"]
targets = [t for t in r["targets"] if t["case"] == "bert-train-bf16"]
assert any(t["target"].startswith("samples/s >= 2.5x eager") and t["value"] is not None for t in targets), targets
targets = [t for t in r["targets"] if t["case"] == "gpt2-train-bf16"]
assert any(t["target"] == "tokens/s >= 400,000" and t["value"] is not None for t in targets), targets
print("ok: 2 rounds of both tools per case from one eager worker (built once per case); medians, ratios, targets;"
      " same FLOPs and parameter count on both sides")
PY
[ $? -eq 0 ] || exit 1
grep -q "| bert-train-bf16 | wattwise |" "$work/table.md" || { echo "FAIL: table lacks our bert row"; exit 1; }
grep -q "| gpt2-train-bf16 | pytorch-eager |" "$work/table.md" || { echo "FAIL: table lacks the gpt2 peer row"; exit 1; }
grep -q "Targets met:" "$work/table.md" || { echo "FAIL: table lacks the targets"; exit 1; }
grep -q "^total: [0-9]* s$" "$work/harness.log" || { echo "FAIL: the log lacks the total"; exit 1; }
echo "ok: Markdown table printed, timings logged"

# A case the peer rejects (gpt2 with a sequence longer than its positions) and a worker that dies
# (exits while building bert-infer-fp16-b1): both fail that run only, the worker is started again,
# and the next case is measured. --python runs the peer through this wrapper.
mkdir "$work/failing"
cat > "$work/failing/peer.py" <<PY
import os, sys
sys.path.insert(0, "$here")
import peer_pytorch
build = peer_pytorch.build
def failing_build(args):
    if args.case == "gpt2-train-bf16":
        args.seq_len = 65  # gpt2 tiny has 64 positions
    if args.case == "bert-infer-fp16-b1":
        os._exit(3)
    return build(args)
peer_pytorch.build = failing_build
sys.exit(peer_pytorch.main(sys.argv[2:]))  # argv: this file, peer_pytorch.py, --serve
PY
printf '#!/bin/sh\nexec python3 "%s" "$@"\n' "$work/failing/peer.py" > "$work/failing/python"
chmod +x "$work/failing/python"
python3 "$here/run_harness.py" --wattwise "$bin" --cases gpt2-train-bf16,bert-infer-fp16-b1,bert-infer-fp16-b32 \
  --rounds 1 "${tiny[@]}" --python "$work/failing/python" --out "$work/failing" > /dev/null 2> "$work/failing.log" ||
  { cat "$work/failing.log"; exit 1; }
grep -q "round 1 eager: failed: peer: --seq-len 65 exceeds n_positions 64" "$work/failing.log" ||
  { cat "$work/failing.log"; echo "FAIL: the rejected case is not reported"; exit 1; }
grep -q "round 1 eager: eager worker exited (status 3)" "$work/failing.log" ||
  { cat "$work/failing.log"; echo "FAIL: the dead worker is not reported"; exit 1; }
python3 - "$work/failing" <<'PY' || exit 1
import glob, json, sys
[path] = glob.glob(f"{sys.argv[1]}/bench_cpu_*.json")
r = json.load(open(path))
got = sorted((x["case"], x["tool"]) for x in r["runs"])
assert got == [("bert-infer-fp16-b1", "wattwise"), ("bert-infer-fp16-b32", "pytorch-eager"),
               ("bert-infer-fp16-b32", "wattwise"), ("gpt2-train-bf16", "wattwise")], got
assert len(r["timing"]["worker_starts_s"]["eager"]) == 2, r["timing"]  # started again after it died
print("ok: a rejected case and a dead worker fail their run only; the next case is measured")
PY

# The old way: every peer run its own process.
python3 "$here/run_harness.py" --wattwise "$bin" --cases bert-infer-fp16-b1 --rounds 1 "${tiny[@]}" --one-shot-peers \
  --out "$work/one-shot" > /dev/null 2> "$work/one-shot.log" || { cat "$work/one-shot.log"; exit 1; }
python3 - "$work/one-shot" <<'PY' || exit 1
import glob, json, sys
[path] = glob.glob(f"{sys.argv[1]}/bench_cpu_*.json")
r = json.load(open(path))
assert sorted(x["tool"] for x in r["runs"]) == ["pytorch-eager", "wattwise"], r["runs"]
assert r["peers"] == "one process per run" and r["timing"]["worker_starts_s"] == {}, (r["peers"], r["timing"])
assert not glob.glob(f"{sys.argv[1]}/*.peer-*.log"), "a worker log without workers"
print("ok: --one-shot-peers")
PY
