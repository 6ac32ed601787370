#!/usr/bin/env bash
# GPU-machine call for issue 9: all-MiniLM-L6-v2 fine-tuned with wattwise and replayed in PyTorch
# from the same start (bench/minilm_side_by_side.py), one task per call because the checkpoint and
# IMDB do not travel together (64 MiB per call):
#   WW_TASK=sst2: carry .deps and .gpu-carry (minilm/ = the checkpoint in fp16, data/glue/SST-2,
#     data/tokenizers); the checkpoint is kept in build/carry/ for the next call on a warm machine.
#   WW_TASK=imdb: carry .gpu-carry with data/aclImdb.tar.gz; uses build/carry/minilm.
# WW_SEEDS (default "42 43 44"), WW_LR_SWEEP (e.g. "3e-5 5e-5 1e-4"; empty: the recipe's lr),
# WW_EXTRA (more wattwise overrides), WW_SKIP_PYTORCH=1 (wattwise only: a kernel change's accuracy
# against an earlier PyTorch run of the same seeds), WW_TEST_TARGETS (CUDA tests to build and run first, e.g.
# "ops_attention_fused_test test_cuda_model"). Everything lands under $OUT.
set -uo pipefail
task=${WW_TASK:-sst2}
source "$(dirname "$0")/session_common.sh"
targets=${WW_TEST_TARGETS:-}
keep_minilm || exit 3  # before the build: a machine that lost the checkpoint should not spend one
build_wattwise $targets || exit 1
unpack_data
# CUDA tests named in WW_TEST_TARGETS first (test_cuda_model's real-checkpoint test reads the
# checkpoint from WW_MINILM_DIR).
for t in $targets; do
  WW_MINILM_DIR=$PWD/$model timeout 150 build/tests/$t > "$OUT/$t.log" 2>&1
  say "$t: rc $?, $(grep -cE '^\[       OK' "$OUT/$t.log") ok"
  grep -E "^\[  FAILED|Failure|<--|whole gradient" -A3 "$OUT/$t.log" | head -30 | tee -a "$summary"
done

python3 bench/minilm_side_by_side.py --wattwise build/wattwise --model "$model" --data-root .gpu-carry/data \
  --task "$task" --seeds ${WW_SEEDS:-42 43 44} ${WW_LR_SWEEP:+--lr-sweep $WW_LR_SWEEP} --out "$OUT/$task" \
  ${WW_SKIP_PYTORCH:+--skip-pytorch} \
  -- ${WW_EXTRA:-} 2>&1 | grep -vE "^\s*$" | tail -40

# The saved model of the first seed in transformers: same predictions as wattwise predict.
run=$(ls -d "$OUT/$task"/runs_$task/*_${task}_seed* 2>/dev/null | head -1)
if [ -n "$run" ]; then
  len=$([ "$task" = imdb ] && echo 256 || echo 128)
  python3 bench/check_saved_model.py --wattwise build/wattwise --model "$run/best_model" \
    --texts "$run/plan/eval.jsonl" --limit 872 --max-length $len --device cuda --work /tmp/ww-check
  python3 bench/check_saved_model.py --wattwise build/wattwise --model "$run/best_model" \
    --texts "$run/plan/eval.jsonl" --limit 200 --max-length $len --device cpu --work /tmp/ww-check-cpu
fi
# Keep the results small: drop the checkpoints and plans, then pack the run folders' logs and
# metrics into one archive (a few hundred loose files exceed what comes back from a call); the
# side-by-side JSON and Markdown stay loose.
find "$OUT" -name "*.safetensors" -delete; find "$OUT" -path "*plan*" -name "*.jsonl" -delete
if [ -d "$OUT/$task" ]; then
  tar -C "$OUT" -czf "$OUT/${task}_runs.tgz" "$task" &&
    find "$OUT/$task" -type f ! -name "side_by_side*" -delete && find "$OUT/$task" -type d -empty -delete
fi
echo "total: $(( $(date +%s) - start )) s"
