#!/usr/bin/env bash
# One GPU call for the side-by-side harness after a round of kernel work: build wattwise and the
# CUDA tests named in WW_TEST_TARGETS, run those tests, then one bench/run_harness.py call for the
# training cases in WW_TRAIN_CASES (ours, PyTorch eager, torch.compile) and the inference cases in
# WW_INFER_CASES (ours and eager: issue 6's inference targets are against eager; likewise
# WW_TRAIN_EAGER_CASES for training cases). One call, so each peer mode starts one worker. A machine
# still warm from an earlier call keeps the build (cmake only rebuilds what changed).
# Carry .deps and .gpu-carry. Results: $OUT/summary.txt, $OUT/harness/bench_*.{json,md} (and the
# harness's log with its timings, harness.log, and the peer workers' logs beside them).
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
targets=${WW_TEST_TARGETS:-}
build_wattwise $targets || exit 1
run_tests $targets
# A checkpoint carried along (.gpu-carry/minilm) is kept in build/carry/ for a following
# WW_TASK=imdb call of scripts/gpu/session_minilm.sh on the still-warm machine (the checkpoint and
# IMDB do not fit one call's carry together).
[ -f .gpu-carry/minilm/model.safetensors ] && keep_minilm && say "kept the checkpoint in build/carry/minilm"
# One harness call for every case, so each PyTorch peer mode starts one worker. Only WW_TRAIN_CASES
# get torch.compile: the training cases whose targets are against eager only (DistilBERT fp16/fp32,
# BERT-base bf16) and the inference cases run ours and eager. The harness gets what is left before
# the call's deadline (WW_DEADLINE_S after the start); it starts no case that would end later.
deadline=$(( start + ${WW_DEADLINE_S:-560} ))
cases=$(echo "${WW_TRAIN_CASES:-},${WW_TRAIN_EAGER_CASES:-},${WW_INFER_CASES:-}" | tr -s , | sed 's/^,//; s/,$//')
left=$(( deadline - $(date +%s) ))
if [ -n "$cases" ] && [ $left -gt 30 ]; then
  dir=$OUT/harness; mkdir -p $dir
  timeout $(( left + 20 )) python3 bench/run_harness.py --wattwise build/wattwise --out $dir --device cuda \
    --cases "$cases" --compile-cases "${WW_TRAIN_CASES:-}" --rounds ${WW_BENCH_ROUNDS:-3} \
    --min-seconds ${WW_BENCH_MIN_SECONDS:-1} --budget-s $left ${WW_MATMUL_TFLOPS:+--matmul-tflops $WW_MATMUL_TFLOPS} \
    2> $dir/harness.log
  say "harness: rc $? at $(( $(date +%s) - start )) s"
  tail -3 $dir/harness.log | tee -a "$summary"
  cat $dir/bench_*.md 2>/dev/null | tee -a "$summary"
elif [ -n "$cases" ]; then
  say "harness $cases: no time left"
fi
# Where GPT-2's step goes (WW_GPT2_PROFILE=1), if the deadline leaves time.
[ -n "${WW_GPT2_PROFILE:-}" ] && profile_gpt2_step $(( deadline - $(date +%s) ))
say "total: $(( $(date +%s) - start )) s"
