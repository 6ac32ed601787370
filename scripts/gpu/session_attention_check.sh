#!/usr/bin/env bash
# One GPU call after fused-attention work: build wattwise and the attention / model CUDA tests, run
# them, time the fused kernels (the disabled Timing test, every shape of it), then our training
# step alone for WW_BENCH_CASES. A baseline binary carried in .gpu-carry/base/wattwise (built on
# the CPU machine from the commit before the change, scripts/gpu/build_baseline.sh) is benched in
# the same call, alternating with ours, so before/after is measured on one GPU.
# Carry .deps and .gpu-carry. Results: $OUT/summary.txt, $OUT/*.log, $OUT/bench.jsonl.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
targets=${WW_TEST_TARGETS:-test_cuda_flash_attention test_cuda_attention test_cuda_model test_cuda_gpt2}
build_wattwise $targets || exit 1
run_tests $targets

timeout 180 build/tests/test_cuda_flash_attention --gtest_also_run_disabled_tests --gtest_filter='*Timing*' \
  > $OUT/timing.log 2>&1
say "attention timing: rc $?"
grep -E "fused|reference" $OUT/timing.log | tee -a "$summary"

base=.gpu-carry/base/wattwise
for round in 1 2; do
  for c in ${WW_BENCH_CASES:-gpt2-train-bf16 distilbert-train-bf16 bert-train-bf16}; do
    for tool in build/wattwise $base; do
      [ -x "$tool" ] || continue
      name=$([ "$tool" = "$base" ] && echo base || echo new)
      timeout 120 $tool bench --case $c --device cuda --min-seconds 2 --json $OUT/bench.jsonl > $OUT/bench_${c}_$name.log 2>&1
      say "round $round $c $name: rc $? $(grep -E '^wattwise' $OUT/bench_${c}_$name.log | tr -s ' ')"
    done
  done
done
say "total: $(( $(date +%s) - start )) s"
