#!/usr/bin/env bash
# A second GPU call on the warm machine after session_check_harness.sh (its build is kept): where
# the time goes, per kernel under Nsight Compute (clocks untouched), for GPT-2's training step,
# DistilBERT's training step and BERT-base batch-1 inference: the profiles issue 6 asks for beside
# each miss; then f32 DistilBERT training with either attention path (the fused kernel has no
# tensor cores in f32; the reference path uses cuBLAS). Carry .deps and .gpu-carry. Results:
# $OUT/summary.txt, the CSVs and logs in $OUT/logs.tar.gz.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
build_wattwise || { pack_outputs; exit 1; }
deadline=$(( start + ${WW_DEADLINE_S:-540} ))
profile_gpt2_step $(( deadline - $(date +%s) ))
profile_bench_case distilbert-train-bf16 1200 400 $(( deadline - $(date +%s) ))
profile_bench_case bert-infer-fp16-b1 300 140 $(( deadline - $(date +%s) ))
profile_attention_kernels $(( deadline - $(date +%s) ))
for att in fused reference fused reference; do
  [ $(( deadline - $(date +%s) )) -gt 30 ] || break
  timeout 60 build/wattwise bench --case distilbert-train-fp32 --attention $att --device cuda --min-seconds 2 \
    > $OUT/bench_fp32_$att.log 2>&1
  say "distilbert-train-fp32 attention $att: rc $? $(grep -E '^wattwise' $OUT/bench_fp32_$att.log | tr -s ' ')"
done
say "total: $(( $(date +%s) - start )) s"
pack_outputs
