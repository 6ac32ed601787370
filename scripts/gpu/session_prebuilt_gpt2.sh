#!/usr/bin/env bash
# A short GPU call that builds nothing, for when less than five minutes of device time are left:
# the test programs and wattwise prebuilt on the CPU machine into .gpu-carry/prebuilt
# (scripts/gpu/build_baseline.sh HEAD .gpu-carry/prebuilt TEST...), the named tests, then the
# harness's GPT-2 case (wattwise, PyTorch eager, torch.compile alternately; ~2 minutes on an H100),
# then the per-kernel profiles named in WW_PROFILE_CASES.
# Carry .deps and .gpu-carry without .gpu-carry/base (64 MiB per call). Results as
# session_check_harness.sh's.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
bin=.gpu-carry/prebuilt
# Packed to fit the carry: tar -C .gpu-carry -cJf .gpu-carry/packed/prebuilt.tar.xz prebuilt
[ -f .gpu-carry/packed/prebuilt.tar.xz ] && tar -C .gpu-carry -xJf .gpu-carry/packed/prebuilt.tar.xz
say "prebuilt: $(cat $bin/COMMIT)"
WW_TEST_DIR=$bin WW_TEST_TIMEOUT=${WW_TEST_TIMEOUT:-90} run_tests ${WW_TEST_TARGETS:-test_cuda_gemm}
python3 bench/run_harness.py --wattwise $bin/wattwise --out "$OUT" --device cuda --cases gpt2-train-bf16 \
  --compile-cases gpt2-train-bf16 --rounds "${WW_BENCH_ROUNDS:-3}" --min-seconds 2 \
  --budget-s "${WW_HARNESS_BUDGET_S:-200}" 2> "$OUT/harness.log" | tail -30 >> "$summary"
say "harness: rc ${PIPESTATUS[0]}; $(tail -1 "$OUT/harness.log")"
# WW_PROFILE_CASES="case:skip:count ...": per-kernel profiles after the harness, while time lasts.
for spec in ${WW_PROFILE_CASES:-}; do
  IFS=: read -r c skip count <<< "$spec"
  WW_BIN=$bin profile_bench_case "$c" "$skip" "$count" $(( start + ${WW_DEADLINE_S:-280} - $(date +%s) ))
done
say "total: $(( $(date +%s) - start )) s"
pack_outputs
