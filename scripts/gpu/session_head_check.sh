#!/usr/bin/env bash
# One GPU call after the padded-vocabulary LM head and the save fix: build wattwise and the CUDA
# tests named in WW_TEST_TARGETS (run with WW_TEST_FILTER), then gpt2-train-bf16 (ours; the
# harness's peers when WW_GPT2_PEERS=1), and keep a carried checkpoint (.gpu-carry/minilm) in
# build/carry/ for a following WW_TASK=imdb call of scripts/gpu/session_minilm.sh.
# Carry .deps and .gpu-carry/minilm. Results: $OUT/summary.txt and the logs beside it.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
[ -f .gpu-carry/minilm/model.safetensors ] && keep_minilm && say "kept the checkpoint in build/carry/minilm"
targets=${WW_TEST_TARGETS:-}
build_wattwise $targets || exit 1
for t in $targets; do
  timeout 120 build/tests/$t --gtest_filter="${WW_TEST_FILTER:-*}" > $OUT/$t.log 2>&1; rc=$?
  say "$t: rc $rc, $(grep -cE '^\[       OK' $OUT/$t.log) ok"
  grep -E "^\[  FAILED|Failure" -A4 $OUT/$t.log | head -20 | tee -a "$summary"
done
build/wattwise bench --case gpt2-train-bf16 --device cuda --min-seconds 3 --peak-tflops 790 2>&1 | tail -8 | tee -a "$summary"
say "total: $(( $(date +%s) - start )) s"
