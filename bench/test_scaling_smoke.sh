#!/usr/bin/env bash
# The scaling run's PyTorch side and driver on the CPU, tiny shapes, Gloo ranks. Usage:
#   test_scaling_smoke.sh WATTWISE [SHARED_DATA]
# 1. bench/peer_pytorch_dist.py on 2 ranks (torchrun) with DDP and with FSDP, and in one process:
#    the job's samples, per-rank memory, model state (FSDP's about half of DDP's on 2 ranks), the
#    same loss from both (fp32, same weights and rows);
# 2. scripts/gpu/scaling.sh --device cpu --smoke on 1 and 2 ranks, one round, GPT-2 only, and the
#    loss part when SHARED_DATA (default ../shared/data) has tiny shakespeare: every side's result
#    or the reason it was left out, the loss runs, the table.
# Skips (77) when python3 cannot import torch and transformers.
set -euo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
data=${2:-$here/../../shared/data}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! python3 -c "import torch, transformers" >/dev/null 2>&1; then
  echo "SKIP: python3 cannot import torch and transformers"
  exit 77
fi
tiny=(--device cpu --arch gpt2 --preset tiny --batch 2 --seq-len 16 --precision fp32 --steps 3 --warmup 1)
for d in ddp fsdp; do
  python3 -m torch.distributed.run --standalone --nproc-per-node 2 "$here/peer_pytorch_dist.py" --dist "$d" \
    "${tiny[@]}" --case gpt2-train-bf16 --json "$work/$d.json" > "$work/$d.log" 2>&1 || { cat "$work/$d.log"; exit 1; }
done
python3 "$here/peer_pytorch_dist.py" --dist ddp "${tiny[@]}" --json "$work/one.json" > "$work/one.log" 2>&1 ||
  { cat "$work/one.log"; exit 1; }
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
ddp, fsdp, one = (json.load(open(f"{w}/{n}.json")) for n in ("ddp", "fsdp", "one"))
for r, tool, ranks in ((ddp, "pytorch-ddp", 2), (fsdp, "pytorch-fsdp", 2), (one, "pytorch-ddp", 1)):
    d = r["distributed"]
    assert r["schema"] == "wattwise-bench/1" and r["tool"] == tool, r["tool"]
    assert d["ranks"] == ranks and d["backend"] == "gloo", d
    assert r["batch"] == 2 and r["samples"] == r["steps"] * 2 * ranks and r["tokens"] == r["samples"] * 16, r
    assert abs(d["samples_per_s_per_rank"] * ranks - r["samples_per_s"]) < 1e-9 * r["samples_per_s"], d
    assert [m["rank"] for m in d["memory_per_rank"]] == list(range(ranks)), d["memory_per_rank"]
    for m in d["memory_per_rank"]:
        assert m["model_state_bytes"] == m["parameter_bytes"] + m["gradient_bytes"] + m["optimizer_state_bytes"], m
# DDP: every rank holds fp32 parameters, gradients and Adam's two moments (16 bytes a parameter; the
# tied LM head once), plus a 4-byte step count per tensor.
P = ddp["params"]
for m in ddp["distributed"]["memory_per_rank"]:
    assert m["parameter_bytes"] == 4 * P and m["gradient_bytes"] == 4 * P, (m, P)
    assert 8 * P <= m["optimizer_state_bytes"] <= 8 * P + 4096, (m, P)
# FSDP SHARD_GRAD_OP on 2 ranks: each holds about half of everything at rest.
for m in fsdp["distributed"]["memory_per_rank"]:
    assert m["model_state_bytes"] <= 0.55 * ddp["distributed"]["memory_per_rank"][0]["model_state_bytes"], m
# Same weights (seeded), same rows per rank, fp32: the same training, so nearly the same loss.
assert abs(ddp["final_loss"] / fsdp["final_loss"] - 1) < 1e-4, (ddp["final_loss"], fsdp["final_loss"])
assert ddp["distributed"]["final_loss_per_rank"] != [ddp["final_loss"]] * 2, "every rank trained on the same rows"
print("ok: the data-parallel peer, DDP and FSDP on 2 Gloo ranks and one process")
PY

bash "$here/../scripts/gpu/scaling.sh" --wattwise "$bin" --device cpu --smoke --gpus 1,2 --rounds 1 \
  --cases gpt2-train-bf16 --min-seconds 0 --steps 2 --warmup 1 --loss-steps 3 --data "$data" --out "$work/scaling" \
  --deadline 400 > "$work/scaling.log" 2>&1 || { cat "$work/scaling.log"; exit 1; }
python3 - "$work/scaling" "$data" <<'PY'
import json, os, sys
out, data = sys.argv[1:3]
lines = [json.loads(l) for l in open(f"{out}/scaling.jsonl")]
meta = [l for l in lines if l["schema"] == "wattwise-scaling-meta/1"]
runs = {(l["side"], l["gpus"]) for l in lines if l["schema"] == "wattwise-bench/1"}
skipped = {(l["side"], l["gpus"]): l["reason"] for l in lines if l["schema"] == "wattwise-scaling-not-run/1"}
losses = {(l["side"], l["gpus"]): l for l in lines if l["schema"] == "wattwise-scaling-loss/1"}
assert len(meta) == 1 and meta[0]["smoke"] == 1, meta
want = [(s, 1) for s in ("wattwise", "wattwise-zero0", "wattwise-zero2", "pytorch", "pytorch-ddp", "pytorch-fsdp")] + \
       [(s, 2) for s in ("wattwise-zero0", "wattwise-zero2", "pytorch-ddp", "pytorch-fsdp")]
for key in want:
    # ZeRO 2 needs `bench --zero`; a wattwise without it says so instead.
    ok = key in runs or (key[0] == "wattwise-zero2" and skipped.get(key) == "this wattwise has no bench --zero")
    assert ok, (key, skipped.get(key))
for l in lines:
    if l["schema"] == "wattwise-bench/1":
        assert l["batch"] == 2 and l["seq_len"] == 16 and l["samples"] == l["steps"] * 2 * l["gpus"], l
if os.path.exists(f"{data}/tinyshakespeare/input.txt"):
    assert set(losses) == {("wattwise", 1), ("wattwise-zero0", 2), ("wattwise-zero2", 2), ("wattwise-zero0", 1),
                           ("wattwise-zero2", 1)}, sorted(losses)
    ref = losses[("wattwise", 1)]["final_loss"]
    for l in losses.values():
        assert l["steps"] == 3 and abs(l["final_loss"] / ref - 1) < 1e-4, l
table = open(f"{out}/scaling_table.md").read()
assert "## gpt2-train-bf16" in table and "## Targets:" in table, table
print("ok: scaling.sh on the CPU: every side on 1 and 2 ranks, the loss runs, the table")
PY
