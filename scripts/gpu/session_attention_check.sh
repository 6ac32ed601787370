#!/usr/bin/env bash
# One GPU call after fused-attention work: build wattwise and the CUDA tests that attention and
# dropout reach, run the flash-attention test, time the fused kernels (its disabled Timing test,
# every shape), bench our training step for WW_BENCH_CASES, then the other tests, then (as time
# allows) Nsight Compute on the attention kernels and on a GPT-2 step. A baseline binary
# carried in .gpu-carry/base/wattwise (scripts/gpu/build_baseline.sh: the commit before the change,
# built on the CPU machine) is benched in the same call, alternating with ours: before/after on one
# GPU. Carry .deps and .gpu-carry. Results: $OUT/summary.txt, $OUT/*.log, $OUT/bench.jsonl.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
first=ops_attention_fused_test
others=${WW_TEST_TARGETS:-ops_attention_test test_cuda_model test_cuda_gpt2 ops_layernorm_test ops_linear_test test_cuda_parity}
build_wattwise $first $others || exit 1
run_tests $first

timeout 180 build/tests/ops_attention_fused_test --gtest_also_run_disabled_tests --gtest_filter='*Timing*' \
  > $OUT/timing.log 2>&1
say "attention timing: rc $?"
grep -E "fused|reference" $OUT/timing.log | tee -a "$summary"

bench_before_after 2
run_tests $others
# What limits the attention kernels, then where GPT-2's step goes now, with what is left of the
# call (WW_DEADLINE_S after the start).
deadline=$(( start + ${WW_DEADLINE_S:-570} ))
profile_attention_kernels $(( deadline - $(date +%s) ))
profile_gpt2_step $(( deadline - $(date +%s) ))
say "total: $(( $(date +%s) - start )) s"
pack_outputs
