#!/usr/bin/env bash
# `wattwise bench` on the CPU with a tiny shape: the JSON fields and their arithmetic, the case
# list, and a bad case name (one-line error listing the cases, non-zero exit).
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

"$bin" bench --case list --json cases.jsonl > list.txt
check "case list names the 8 cases" '[ "$(grep -c -- "-fp\|-bf16\|-fp32" list.txt)" -eq 8 ] && [ "$(wc -l < cases.jsonl)" -eq 8 ]'
check "case definitions carry the model config" 'head -1 cases.jsonl | python3 -c "import json,sys; c=json.load(sys.stdin); assert c[\"case\"]==\"distilbert-train-bf16\" and c[\"model_config\"][\"dim\"]==768"'

"$bin" bench --case bert-train-int8 --device cpu > /dev/null 2> err.txt
rc=$?
check "unknown case: exit 1 with the list of cases" '[ $rc -eq 1 ] && grep -q "unknown bench case .bert-train-int8.*distilbert-infer-fp16-b32" err.txt && [ "$(wc -l < err.txt)" -eq 1 ]'
"$bin" bench --case bert-train-bf16 --device cpu > /dev/null 2> err.txt
check "bf16 on the CPU: a clear error" '[ $? -eq 1 ] && grep -qi "bf16\|16-bit\|gpu\|cuda" err.txt'

[ $fails -eq 0 ]
