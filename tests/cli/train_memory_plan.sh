#!/usr/bin/env bash
# `wattwise train --train.checkpointing auto`: without checkpointing when the predicted activations
# and model state fit (the default budget: 90% of the free memory), with it when
# train.memory_budget_mb is too small for none, the same losses either way (checkpointing
# recomputes, it does not change the step), the plan in metrics.json; a budget nothing fits is one
# line before any run folder. A 4-layer BERT, under a second a run.
# Usage (ctest): bash train_memory_plan.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

python3 "$src/tests/tools/make_cli_data.py" 160
runs=$work/runs
# Length 8: every example is longer, so every batch has the full length the plan predicts for.
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 8 --model.preset mini
      --run.output_dir "$runs" --run.device cpu --train.batch_size 16 --train.max_steps 4 --train.eval_every 0
      --train.log_every 1)
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
plan() { json "$(run_of "$1")/metrics.json" "m[\"execution\"][\"checkpointing_plan\"]$2"; }
losses() { cut -d, -f1,3 "$(run_of "$1")/train_log.csv"; }

"$bin" train "${bert[@]}" --train.checkpointing auto --run.name roomy 2> err_roomy
check "the default budget: none, said on stderr, the plan in a valid, documented metrics.json" \
  '[ $? -eq 0 ] && [ "$(json "$(run_of roomy)/metrics.json" "m[\"execution\"][\"checkpointing\"]")" = none ] &&
   grep -q "train.checkpointing auto: none" err_roomy && python3 "$checker" train "$(run_of roomy)/metrics.json" "$metrics_doc" || { cat err_roomy; false; }'
check "the prediction for none is the arena the run allocated (every batch at the full length, no evaluation)" \
  '[ "$(plan roomy "[\"predicted_activation_bytes\"][\"none\"]")" = "$(json "$(run_of roomy)/metrics.json" "m[\"execution\"][\"activation_bytes\"]")" ]'

# A budget between what every-layer checkpointing and none need: the plan checkpoints.
need_none=$(plan roomy '["predicted_activation_bytes"]["none"] + m["execution"]["checkpointing_plan"]["model_state_bytes"]')
need_every=$(plan roomy '["predicted_activation_bytes"]["every"] + m["execution"]["checkpointing_plan"]["model_state_bytes"]')
budget_mb=$(python3 -c "print(($need_none + $need_every) / 2 / 2**20)")
"$bin" train "${bert[@]}" --train.checkpointing auto --train.memory_budget_mb "$budget_mb" --run.name tight 2> err_tight
check "a budget none does not fit: checkpointing (sqrt or every), the reason on stderr" \
  '[ $? -eq 0 ] && c=$(json "$(run_of tight)/metrics.json" "m[\"execution\"][\"checkpointing\"]") && [ "$c" = sqrt -o "$c" = every ] &&
   grep -q "none would need" err_tight || { cat err_tight; false; }'
check "checkpointing changes no loss" '[ "$(losses roomy)" = "$(losses tight)" ]'
check "the arena it allocated is the prediction for its choice, smaller than the one for none" \
  'python3 - "$(run_of tight)/metrics.json" <<'"'"'PY'"'"'
import json, sys
m = json.load(open(sys.argv[1]))
e = m["execution"]
p = e["checkpointing_plan"]["predicted_activation_bytes"]
assert e["activation_bytes"] == p[e["checkpointing"]] < p["none"], e
PY'

"$bin" train "${bert[@]}" --train.checkpointing auto --train.memory_budget_mb 1 --run.name none_fits 2> err_small
check "a budget nothing fits: exit 1, one line with the sizes, no run folder" \
  '[ $? -eq 1 ] && [ "$(wc -l < err_small)" -eq 1 ] && grep -q "does not fit even with checkpointing every" err_small &&
   [ -z "$(run_of none_fits)" ] || { cat err_small; false; }'
"$bin" train "${bert[@]}" --train.memory_budget_mb 100 --run.name budget_alone 2> err_alone
check "train.memory_budget_mb without auto: exit 1, one line naming it" \
  '[ $? -eq 1 ] && [ "$(wc -l < err_alone)" -eq 1 ] && grep -q "train.memory_budget_mb applies only" err_alone || { cat err_alone; false; }'

[ $fails -eq 0 ]
