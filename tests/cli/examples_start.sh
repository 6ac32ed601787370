#!/usr/bin/env bash
# Each examples/*.toml starts as written and trains 2 steps on the CPU (the full runs belong on a
# GPU): run from the repository root with its own paths, overriding only what keeps it quick
# (max_steps, a few examples, a small batch), and it must leave a complete run folder. Skips when the
# data sets are not where the examples expect them (../shared/data from the repository root).
# Usage (ctest): bash examples_start.sh <wattwise-binary> <source-dir> <shared-data-dir>
set -uo pipefail
bin=$(realpath "$1") src=$(realpath "$2")
cd "$src" || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
# The value of a key in the example's [section] (quotes removed).
toml_key() { awk -v sec="[$2]" -v key="$3" '/^\[/ {in_sec = ($1 == sec)} in_sec && $1 == key {sub(/^[^=]*= */, ""); gsub(/"/, ""); print}' "$1"; }

ran=0
for example in examples/*.toml; do
  name=$(basename "$example" .toml)
  data_path=$(toml_key "$example" data path)
  tokenizer=$(toml_key "$example" model tokenizer)
  if [ ! -e "$data_path" ] || [ ! -f "$tokenizer/vocab.txt" ]; then
    echo "skip: $name needs $data_path and $tokenizer/vocab.txt"
    continue
  fi
  ran=$((ran + 1))
  start=$(date +%s)
  "$bin" train --config "$example" --train.max_steps 2 --train.batch_size 2 --data.max_train_examples 16 \
    --data.max_eval_examples 8 --run.output_dir "$work/runs" --run.progress lines 2>"$work/$name.err"
  rc=$?
  tail -n 4 "$work/$name.err"
  run=$(ls -d "$work/runs/"*_"$(toml_key "$example" run name)" 2>/dev/null | head -1)
  check "$name: starts and trains 2 steps (exit 0, $(($(date +%s) - start)) s)" '[ $rc -eq 0 ]'
  check "$name: complete run folder" \
    '[ -f "$run/metrics.json" ] && [ -f "$run/best_model/model.safetensors" ] && [ "$(tail -n +2 "$run/train_log.csv" | wc -l)" -ge 1 ]'
  check "$name: 2 steps taken, config as written" \
    'grep -q "\"steps\": 2," "$run/metrics.json" && grep -q "^max_length = $(toml_key "$example" data max_length)$" "$run/config.toml"'
  rm -rf "$work/runs"  # base-size checkpoints are large
done
if [ $ran -eq 0 ]; then
  echo "SKIP: no example's data set is in place (see examples/README.md)"
  exit 77
fi
echo "$fails failed"
[ $fails -eq 0 ]
