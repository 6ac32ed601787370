#!/usr/bin/env bash
# A GPU call that builds nothing (the build takes 100-160 s of a call): the test programs and wattwise
# prebuilt on the CPU machine and packed,
#   bash scripts/gpu/build_baseline.sh HEAD .gpu-carry/prebuilt ops_linear_test ops_layernorm_test ...
#   tar -C .gpu-carry -cJf .gpu-carry/packed/prebuilt.tar.xz prebuilt && rm -r .gpu-carry/prebuilt
# then the named tests (WW_TEST_TARGETS), the harness (WW_HARNESS_CASES, default every case; GPT-2
# alone takes ~2 minutes on an H100, every case ~4.5), and the per-kernel profiles named in
# WW_PROFILE_CASES ("case:skip:count ...") while WW_DEADLINE_S lasts. Carry .deps and .gpu-carry
# (64 MiB per call: move .gpu-carry/base aside). Results as session_check_harness.sh's.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
bin=.gpu-carry/prebuilt
# Packed to fit the carry: tar -C .gpu-carry -cJf .gpu-carry/packed/prebuilt.tar.xz prebuilt
[ -f .gpu-carry/packed/prebuilt.tar.xz ] && tar -C .gpu-carry -xJf .gpu-carry/packed/prebuilt.tar.xz
say "prebuilt: $(cat $bin/COMMIT)"
# The test programs look for committed fixtures under the source folder they were built from
# (build_baseline.sh's worktree): point it at this checkout.
[ -e /tmp/ww-baseline ] || ln -s "$PWD" /tmp/ww-baseline
# WW_CUDA_PROBES="name ...": bench/cuda probes first (nvcc + cuBLASLt only, ~15 s each, e.g.
# mlp_epilogue_gemm); WW_LM_HEAD_GEMM=1 adds lm_head_gemm before them.
probes=${WW_CUDA_PROBES:-}
[ "${WW_LM_HEAD_GEMM:-0}" = 1 ] && probes="lm_head_gemm $probes"
for p in $probes; do WW_PROBE_HIDE=candidate run_cuda_probe "$p" 10; done
WW_TEST_DIR=$bin WW_TEST_TIMEOUT=${WW_TEST_TIMEOUT:-90} run_tests ${WW_TEST_TARGETS:-ops_linear_test}
all_cases=gpt2-train-bf16,distilbert-train-bf16,distilbert-train-fp16,distilbert-train-fp32,bert-train-bf16,bert-infer-fp16-b1,bert-infer-fp16-b32,bert-infer-fp16-b256,distilbert-infer-fp16-b32,minilm-train-bf16
# WW_HARNESS_CASES=none: no harness run (a call of tests, variants and profiles only).
if [ "${WW_HARNESS_CASES:-}" != none ]; then
  python3 bench/run_harness.py --wattwise $bin/wattwise --out "$OUT" --device cuda --cases "${WW_HARNESS_CASES:-$all_cases}" \
    --compile-cases gpt2-train-bf16,distilbert-train-bf16 --rounds "${WW_BENCH_ROUNDS:-3}" --min-seconds "${WW_MIN_SECONDS:-2}" \
    --budget-s "${WW_HARNESS_BUDGET_S:-330}" 2> "$OUT/harness.log" | tail -80 >> "$summary"
  say "harness: rc ${PIPESTATUS[0]}; $(tail -1 "$OUT/harness.log")"
fi
# A variant (another commit's binaries, packed as .gpu-carry/packed/variant.tar.xz from
# .gpu-carry/variant the same way): its tests (WW_VARIANT_TESTS), then before/after against the
# prebuilt binary on WW_BENCH_CASES, WW_VARIANT_ROUNDS rounds; the variant is the "new" side, or the
# baseline with WW_VARIANT_IS_BASE=1 (an earlier commit).
if [ -f .gpu-carry/packed/variant.tar.xz ]; then
  tar -C .gpu-carry -xJf .gpu-carry/packed/variant.tar.xz
  say "variant: $(cat .gpu-carry/variant/COMMIT)"
  WW_TEST_DIR=.gpu-carry/variant WW_TEST_TIMEOUT=${WW_TEST_TIMEOUT:-90} run_tests ${WW_VARIANT_TESTS:-}
  new_bin=.gpu-carry/variant/wattwise base_bin=$bin/wattwise
  [ "${WW_VARIANT_IS_BASE:-0}" = 1 ] && { new_bin=$bin/wattwise; base_bin=.gpu-carry/variant/wattwise; }
  WW_NEW_BIN=$new_bin WW_BASE_BIN=$base_bin bench_before_after "${WW_VARIANT_ROUNDS:-2}"
fi
# WW_PROFILE_GPT2=1: where one GPT-2 training step goes (Nsight Compute), while time lasts.
[ "${WW_PROFILE_GPT2:-0}" = 1 ] && WW_BIN=$bin/wattwise profile_gpt2_step $(( start + ${WW_DEADLINE_S:-560} - $(date +%s) ))
# WW_PROFILE_CASES="case:skip:count ...": per-kernel profiles after the harness, while time lasts.
for spec in ${WW_PROFILE_CASES:-}; do
  IFS=: read -r c skip count <<< "$spec"
  WW_BIN=$bin/wattwise profile_bench_case "$c" "$skip" "$count" $(( start + ${WW_DEADLINE_S:-560} - $(date +%s) ))
done
# WW_KERNEL_DETAILS="case:regex:skip:count ...": Nsight Compute's sections for those kernels.
for spec in ${WW_KERNEL_DETAILS:-}; do
  IFS=: read -r c regex skip count <<< "$spec"
  WW_BIN=$bin/wattwise profile_kernel_details "$c" "$regex" "$skip" "$count" $(( start + ${WW_DEADLINE_S:-560} - $(date +%s) ))
done
say "total: $(( $(date +%s) - start )) s"
pack_outputs
