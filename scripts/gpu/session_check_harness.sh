#!/usr/bin/env bash
# One GPU call that checks a change and then measures everything: build wattwise and the CUDA tests
# the change reaches (WW_TEST_TARGETS), run them, bench GPT-2 and DistilBERT training against the
# carried baseline binary (one round, before/after on this GPU), then the whole side-by-side harness
# (bench/run_harness.py: wattwise, PyTorch eager, torch.compile alternately) with what is left of
# WW_DEADLINE_S. For when device time allows one call, not two. Carry .deps and .gpu-carry
# (scripts/gpu/prepare_carry.sh COMMIT). Results: $OUT/summary.txt, $OUT/bench.jsonl, the harness's
# $OUT/bench_<gpu>_<date>.{json,md}, everything else in $OUT/logs.tar.gz. WW_PROFILE_GPT2=1 adds
# GPT-2's per-kernel profile after the harness (give the harness WW_DEADLINE_S=480 then).
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
tests=${WW_TEST_TARGETS:-ops_linear_test ops_layernorm_test ops_embedding_test ops_activation_test ops_dropout_test ops_elementwise_test ops_softmax_test ops_cross_entropy_test test_cuda_gpt2 test_cuda_model test_cuda_parity}
# Issue 8's case first: a harness that runs out of time leaves out the last cases.
all_cases=gpt2-train-bf16,distilbert-train-bf16,distilbert-train-fp16,distilbert-train-fp32,bert-train-bf16,bert-infer-fp16-b1,bert-infer-fp16-b32,bert-infer-fp16-b256,distilbert-infer-fp16-b32,minilm-train-bf16
build_wattwise $tests || { pack_outputs; exit 1; }
WW_TEST_TIMEOUT=${WW_TEST_TIMEOUT:-120} run_tests $tests
WW_BENCH_CASES=${WW_BENCH_CASES:-"gpt2-train-bf16 distilbert-train-bf16"} bench_before_after 1
deadline=$(( start + ${WW_DEADLINE_S:-560} ))
budget=$(( deadline - $(date +%s) - 15 ))
say "harness budget: $budget s"
python3 bench/run_harness.py --wattwise build/wattwise --out "$OUT" --device cuda --cases "${WW_HARNESS_CASES:-$all_cases}" \
  --compile-cases "${WW_COMPILE_CASES:-distilbert-train-bf16,gpt2-train-bf16}" --rounds "${WW_BENCH_ROUNDS:-3}" \
  --min-seconds "${WW_BENCH_MIN_SECONDS:-2}" --budget-s "$budget" 2> "$OUT/harness.log" | tail -60 >> "$summary"
say "harness: rc ${PIPESTATUS[0]}; $(tail -1 "$OUT/harness.log")"
[ -n "${WW_PROFILE_GPT2:-}" ] && profile_gpt2_step $(( start + 585 - $(date +%s) ))
say "total: $(( $(date +%s) - start )) s"
pack_outputs
