#!/usr/bin/env bash
# `wattwise bench` on the CPU with tiny shapes: the JSON fields and their arithmetic, a GPT-2 training
# step (the GPT-2 training case at a tiny size), the case list, and bad names and shapes (one-line errors,
# non-zero exit), and data-parallel benches under `wattwise launch` and WORLD_SIZE=1.
source "$(dirname "$0")/../cli_common.sh"

"$bin" bench --arch bert --preset tiny --mode train --batch 4 --seq-len 16 --steps 3 --warmup 1 --device cpu \
  --peak-tflops 0.5 --json f > out.txt 2> err.txt
check "bench exits 0" '[ $? -eq 0 ]'
check "one JSON object per line, one case" '[ "$(wc -l < f)" -eq 1 ]'
check "shape fields" '[ "$(json f "m[\"arch\"], m[\"preset\"], m[\"mode\"], m[\"batch\"], m[\"seq_len\"], m[\"precision\"], m[\"device\"]")" = "bert tiny train 4 16 fp32 cpu" ]'
check "3 timed steps of 4 samples of 16 tokens" '[ "$(json f "m[\"steps\"], m[\"samples\"], m[\"tokens\"], m[\"warmup_steps\"]")" = "3 12 192 1" ]'
check "rates agree with the elapsed time" 'json f "abs(m[\"samples_per_s\"] * m[\"elapsed_s\"] - 12) < 1e-6 and abs(m[\"tokens_per_s\"] * m[\"elapsed_s\"] - 192) < 1e-6 and abs(m[\"ms_per_sample\"] * 4 - m[\"ms_per_step\"]) < 1e-9" | grep -q True'
check "energy from the CPU packages, J per sample = energy / samples" 'json f "m[\"energy_source\"] == \"cpu\" and m[\"energy_j\"] > 0 and abs(m[\"j_per_sample\"] * 12 - m[\"energy_j\"]) < 1e-9 and len(m[\"energy_provenance\"]) > 0" | grep -q True'
check "peak memory and a finite loss" 'json f "m[\"peak_memory_bytes\"] > 0 and m[\"final_loss\"] > 0" | grep -q True'
check "MFU = achieved TFLOP/s / peak" 'json f "abs(m[\"mfu\"] - m[\"achieved_tflops\"] / 0.5) < 1e-12 and m[\"model_flops_per_step\"] > 0" | grep -q True'
check "model_config is a Hugging Face config" 'json f "m[\"model_config\"][\"model_type\"], m[\"model_config\"][\"hidden_size\"]" | grep -q "bert 64"'
check "table printed" 'grep -q "samples/s" out.txt && grep -q "wattwise" out.txt'

"$bin" bench --arch distilbert --preset tiny --mode infer --batch 2 --seq-len 8 --steps 2 --warmup 0 --device cpu --json g > /dev/null 2>&1
check "infer: no MFU without --peak-tflops, no loss" '[ "$(json g "m[\"mode\"], m[\"mfu\"], m[\"final_loss\"], m[\"samples\"]")" = "infer None None 4" ]'

"$bin" bench --arch gpt2 --preset tiny --mode train --batch 2 --seq-len 16 --precision fp32 --device cpu --steps 2 \
  --warmup 1 --peak-tflops 0.5 --json h > out.txt 2> err.txt
check "gpt2: bench exits 0" '[ $? -eq 0 ]'
check "gpt2: shape fields" '[ "$(json h "m[\"arch\"], m[\"preset\"], m[\"mode\"], m[\"batch\"], m[\"seq_len\"], m[\"precision\"], m[\"optimizer\"]")" = "gpt2 tiny train 2 16 fp32 adamw" ]'
check "gpt2: 2 steps of 2 sequences of 16 tokens" '[ "$(json h "m[\"steps\"], m[\"samples\"], m[\"tokens\"]")" = "2 4 64" ]'
# 6·P·tokens + 12·L·C·T·tokens with P = V·C + L·(12·C² + 13·C) + 2·C (V 50257, C 64, L 2, T 16, 32 tokens).
check "gpt2: model FLOPs per step as documented" 'json h "m[\"model_flops_per_step\"] == 6 * (50257*64 + 2*(12*64*64 + 13*64) + 2*64) * 32 + 12*2*64*16*32" | grep -q True'
check "gpt2: a GPT-2 config, a finite LM loss near ln(50257)" 'json h "m[\"model_config\"][\"model_type\"] == \"gpt2\" and m[\"model_config\"][\"n_embd\"] == 64 and 9 < m[\"final_loss\"] < 12 and m[\"skipped_steps\"] == 0" | grep -q True'
check "gpt2: table printed" 'grep -q "mJ/token" out.txt && grep -q "wattwise" out.txt'

"$bin" bench --arch gpt2 --preset tiny --mode infer --batch 2 --seq-len 16 --device cpu > /dev/null 2> err.txt
rc=$?
check "gpt2 infer: an error naming --mode" '[ $rc -eq 1 ] && grep -q "mode infer is not supported for --arch gpt2" err.txt'
[ "$rc" -eq 1 ] || { echo "   rc $rc, stderr:"; cat err.txt; }
"$bin" bench --arch gpt2 --preset base --batch 2 --seq-len 16 --device cpu > /dev/null 2> err.txt
check "gpt2 preset base: an error naming --preset" '[ $? -eq 1 ] && grep -q -- "--preset: GPT-2 preset .base." err.txt'
"$bin" bench --arch gpt2 --preset tiny --batch 2 --seq-len 65 --device cpu > /dev/null 2> err.txt
check "gpt2 beyond n_positions: an error naming --seq-len" '[ $? -eq 1 ] && grep -q -- "--seq-len 65 exceeds the model.s n_positions 64" err.txt'

"$bin" bench --case list --json cases.jsonl > list.txt
check "case list names the 10 cases" '[ "$(grep -c -- "-fp\|-bf16\|-fp32" list.txt)" -eq 10 ] && [ "$(wc -l < cases.jsonl)" -eq 10 ]'
check "case definitions carry the model config" 'head -1 cases.jsonl | python3 -c "import json,sys; c=json.load(sys.stdin); assert c[\"case\"]==\"distilbert-train-bf16\" and c[\"model_config\"][\"dim\"]==768"'
check "gpt2 case: GPT-2 124M, 16 x 1024, bf16" 'tail -1 cases.jsonl | python3 -c "import json,sys; c=json.load(sys.stdin); assert (c[\"case\"], c[\"preset\"], c[\"batch\"], c[\"seq_len\"], c[\"precision\"], c[\"model_config\"][\"n_layer\"], c[\"model_config\"][\"vocab_size\"], c[\"model_config\"][\"n_positions\"]) == (\"gpt2-train-bf16\", \"small\", 16, 1024, \"bf16\", 12, 50257, 1024), c"'
"$bin" bench --case list --preset tiny --json tiny.jsonl > list.txt
check "a case the flags do not fit is listed with its error" 'grep -q "not runnable with these flags: .*n_positions 64" list.txt && tail -1 tiny.jsonl | grep -q "\"error\""'

"$bin" bench --case bert-train-int8 --device cpu > /dev/null 2> err.txt
rc=$?
check "unknown case: exit 1 with the list of cases" '[ $rc -eq 1 ] && grep -q "unknown bench case .bert-train-int8.*distilbert-infer-fp16-b32" err.txt && [ "$(wc -l < err.txt)" -eq 1 ]'
"$bin" bench --case bert-train-bf16 --device cpu > /dev/null 2> err.txt
check "bf16 on the CPU: a clear error" '[ $? -eq 1 ] && grep -qi "bf16\|16-bit\|gpu\|cuda" err.txt'

# A PyTorch peer that fails: the error names it, and its scratch folder is removed all the same.
mkdir scratch
printf '#!/bin/sh\ncase "$*" in *"import torch"*) exit 0;; esac\necho "peer broke" >&2\nexit 3\n' > fakepython
chmod +x fakepython
TMPDIR="$work/scratch" "$bin" bench --arch bert --preset tiny --mode infer --batch 2 --seq-len 8 --steps 1 --warmup 0 \
  --device cpu --peer pytorch --peer-script "$src/bench/peer_pytorch.py" --python "$work/fakepython" > /dev/null 2> err.txt
check "failing peer: exit 1 naming it, no scratch folder left" \
  '[ $? -eq 1 ] && grep -q "PyTorch peer failed (exit status" err.txt && [ -z "$(ls scratch)" ]'

# Data parallel: `launch --nproc N -- bench` trains each rank on its own batch (weak scaling), rank 0 reports.
bench_tiny=(bench --arch bert --preset tiny --mode train --batch 4 --seq-len 16 --steps 3 --warmup 1 --device cpu)
"$bin" launch --nproc 2 -- "${bench_tiny[@]}" --json dp > dp_out.txt 2> dp_err.txt
check "launch --nproc 2 -- bench: exit 0, one table and one JSON line (rank 0's)" \
  '[ $? -eq 0 ] && [ "$(wc -l < dp)" -eq 1 ] && [ "$(grep -c "samples/s" dp_out.txt)" -eq 1 ] || { cat dp_err.txt; false; }'
check "2 ranks: the job's samples (2 x 3 steps x 4), Gloo, a mean loss like one process's" \
  'json dp "m[\"samples\"] == 24 and m[\"distributed\"][\"ranks\"] == 2 and m[\"distributed\"][\"backend\"] == \"gloo\" and 0.5 < m[\"final_loss\"] < 0.9" | grep -q True'
check "2 ranks: throughput per rank x 2 = the job's, communication share of the timed steps in [0, 1]" \
  'python3 - dp <<'"'"'PY'"'"'
import json, sys
m = json.load(open(sys.argv[1]))
d = m["distributed"]
assert abs(2 * d["samples_per_s_per_rank"] - m["samples_per_s"]) <= 1e-9 * m["samples_per_s"], (d, m["samples_per_s"])
assert abs(2 * d["tokens_per_s_per_rank"] - m["tokens_per_s"]) <= 1e-9 * m["tokens_per_s"], (d, m["tokens_per_s"])
assert 0 <= d["communication_share"] <= 1, d
assert abs(d["communication_share"] * m["elapsed_s"] - d["communication_s"]) <= 1e-9, (d, m["elapsed_s"])
PY'
ranks_on_free_port 1 one_err.txt 'WORLD_SIZE=1 RANK=0 MASTER_PORT=$port "$bin" "${bench_tiny[@]}" --json one > /dev/null 2> one_err.txt'
check "WORLD_SIZE=1: the data-parallel path on one rank, the same loss as one process" \
  'json one "m[\"distributed\"][\"ranks\"] == 1 and m[\"final_loss\"] == $(json f "m[\"final_loss\"]")" | grep -q True || { cat one_err.txt; false; }'
# ZeRO under the launcher: every rank's memory reported; ZeRO 2 holds half the optimizer state of ZeRO 0.
"$bin" launch --nproc 2 -- "${bench_tiny[@]}" --zero 2 --json dp_zero2 > /dev/null 2> dp_err.txt
check "launch --nproc 2 -- bench --zero 2: memory of every rank, half the optimizer state of ZeRO 0" \
  'python3 - dp dp_zero2 <<'"'"'PY'"'"'
import json, sys
z0, z2 = (json.load(open(p))["distributed"] for p in sys.argv[1:3])
assert z0["zero"] == 0 and z2["zero"] == 2, (z0["zero"], z2["zero"])
for rows in (z0["memory_per_rank"], z2["memory_per_rank"]):
    assert [r["rank"] for r in rows] == [0, 1], rows
    for r in rows:
        assert r["model_state_bytes"] == r["parameter_bytes"] + r["gradient_bytes"] + r["optimizer_state_bytes"], r
for a, b in zip(z2["memory_per_rank"], z0["memory_per_rank"]):
    assert abs(2 * a["optimizer_state_bytes"] - b["optimizer_state_bytes"]) <= 8, (a, b)
    assert a["model_state_bytes"] < b["model_state_bytes"], (a, b)
PY' || cat dp_err.txt
"$bin" "${bench_tiny[@]}" --zero 1 2> zero_err.txt
check "bench --zero without a launcher: exit 1, one line saying how to start a job" \
  '[ $? -eq 1 ] && [ "$(wc -l < zero_err.txt)" -eq 1 ] && grep -q "start it with .wattwise launch --nproc N -- bench" zero_err.txt'
"$bin" launch --nproc 2 -- bench --arch bert --preset tiny --mode infer --batch 2 --seq-len 8 --steps 1 --device cpu 2> dp_err.txt
check "an inference case under launch: exit 1, one line per rank naming the case" \
  '[ $? -ne 0 ] && grep -q "only training cases run data-parallel" dp_err.txt'

[ $fails -eq 0 ]
