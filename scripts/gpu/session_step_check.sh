#!/usr/bin/env bash
# One GPU call after training-step work outside attention (fused GEMM epilogues, elementwise
# kernels): build wattwise and the CUDA tests, run the tests (WW_TEST_TARGETS), bench our training
# step against the carried baseline binary alternating (before/after on one GPU, WW_BENCH_CASES,
# WW_BENCH_ROUNDS rounds), then, with what is left of WW_DEADLINE_S, where GPT-2's and DistilBERT's steps go
# under Nsight Compute. Carry .deps and .gpu-carry (scripts/gpu/prepare_carry.sh COMMIT).
# Results: $OUT/summary.txt, $OUT/bench.jsonl, everything else in $OUT/logs.tar.gz.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
tests=${WW_TEST_TARGETS:-test_cuda_gemm test_cuda_elementwise test_cuda_gpt2 test_cuda_model test_cuda_mixed_precision test_cuda_parity}
build_wattwise $tests || { pack_outputs; exit 1; }
run_tests $tests
bench_before_after "${WW_BENCH_ROUNDS:-2}"
# f32 training: the fused attention (no tensor cores in f32) against the reference path's cuBLAS GEMMs.
for att in fused reference fused reference; do
  timeout 120 build/wattwise bench --case distilbert-train-fp32 --attention $att --device cuda --min-seconds 2 \
    > $OUT/bench_fp32_$att.log 2>&1
  say "distilbert-train-fp32 attention $att: rc $? $(grep -E '^wattwise' $OUT/bench_fp32_$att.log | tr -s ' ')"
done
deadline=$(( start + ${WW_DEADLINE_S:-540} ))
profile_gpt2_step $(( deadline - $(date +%s) ))
profile_bench_case distilbert-train-bf16 1200 400 $(( deadline - $(date +%s) ))
say "total: $(( $(date +%s) - start )) s"
pack_outputs
