#!/usr/bin/env bash
# `wattwise train --train.target`: the first evaluation that meets the target gives the time, energy,
# examples (tokens) and steps to target in metrics.json, and stops the run there unless
# train.stop_at_target is false; an unreachable target runs to the end; a bad condition or a metric
# the task's evaluations lack is one line before any run folder; a run stopped at its target does
# not resume. Tiny models on generated data, well under a second a run.
# Usage (ctest): bash train_target.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

python3 "$src/tests/tools/make_cli_data.py" 160
runs=$work/runs
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16
      --run.output_dir "$runs" --run.device cpu --train.batch_size 8 --train.max_steps 12 --train.eval_every 3)
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
target() { json "$(run_of "$1")/metrics.json" "$2"; }

# A target the first evaluation meets (the loss of an untrained binary classifier is ~0.69).
"$bin" train "${bert[@]}" --train.target "loss <= 100" --run.progress lines --run.name stop 2> err_stop
check "met at the first evaluation: the run stops at step 3 of 12, metrics.json valid and documented" \
  '[ $? -eq 0 ] && [ "$(target stop "m[\"train\"][\"steps\"], m[\"train\"][\"stopped_at_target\"]")" = "3 True" ] &&
   python3 "$checker" train "$(run_of stop)/metrics.json" "$metrics_doc" || { cat err_stop; false; }'
check "the figures to target: step 3, evaluation 1, 24 examples, the time and energy so far" \
  'python3 - "$(run_of stop)/metrics.json" <<'"'"'PY'"'"'
import json, sys
m = json.load(open(sys.argv[1]))
t = m["target"]
assert t["condition"] == "loss<=100" and t["reached"] and t["stop_at_target"], t
assert (t["step"], t["evaluation"], t["examples"]) == (3, 1, 24), t
assert t["value"] == m["eval_history"][0]["loss"], (t, m["eval_history"][0])
assert 0 < t["seconds"] <= m["train"]["seconds"] + 1e-9 and t["energy_j"] > 0 and t["kwh"] > 0, t
assert abs(t["kwh"] * 3.6e6 - t["energy_j"]) <= 1e-9 * t["energy_j"], t
assert "tokens" not in t, t
PY'
check "said once on stderr" '[ "$(grep -c "target loss<=100 met at step 3: training stops" err_stop)" -eq 1 ]'

# train.stop_at_target false: the run goes on, the figures stay those of the first evaluation met.
"$bin" train "${bert[@]}" --train.target "loss<=100" --train.stop_at_target false --run.name on 2> err_on
check "stop_at_target false: all 12 steps, the target still at step 3" \
  '[ "$(target on "m[\"train\"][\"steps\"], m[\"target\"][\"step\"], m[\"train\"][\"stopped_at_target\"]")" = "12 3 False" ] || { cat err_on; false; }'

# Unreachable: the run ends at its last step, the target not reached.
"$bin" train "${bert[@]}" --train.target "accuracy>1" --run.name never 2> err_never
check "an unreachable target: all 12 steps, reached false, no figures" \
  '[ "$(target never "m[\"train\"][\"steps\"], m[\"target\"][\"reached\"], \"step\" in m[\"target\"]")" = "12 False False" ] || { cat err_never; false; }'

# Bad conditions: one line naming train.target, no run folder.
for bad in "accuracy=0.9" "speed>=3" "accuracy>=high" "perplexity<=30"; do
  "$bin" train "${bert[@]}" --train.target "$bad" --run.name bad 2> err_bad
  rc=$?
  check "train.target '$bad': exit 1, one line naming the key, no run folder" \
    '[ $rc -eq 1 ] && [ "$(wc -l < err_bad)" -eq 1 ] && grep -q "train.target" err_bad && [ -z "$(run_of bad)" ] || { cat err_bad; false; }'
done

# A run stopped at its target has nothing to continue.
"$bin" train "${bert[@]}" --train.target "loss<=100" --train.checkpoint_every 3 --run.name ckpt 2> /dev/null
"$bin" train --resume "$(run_of ckpt)" --train.max_steps 20 2> err_resume
check "resuming a run stopped at its target: exit 1, saying so" \
  '[ $? -eq 1 ] && grep -q "reached train.target loss<=100 at step 3 and stopped there" err_resume || { cat err_resume; false; }'

# Language modelling: perplexity, and the tokens to target.
gpt2=(--model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt"
      --data.block_size 32 --data.cache_dir "$work/cache" --data.max_eval_examples 8 --run.progress none
      --run.output_dir "$runs" --run.device cpu --train.batch_size 4 --train.max_steps 8 --train.eval_every 2)
"$bin" train "${gpt2[@]}" --train.target "perplexity<=1e9" --run.name lm 2> err_lm
check "GPT-2: a perplexity target met at step 2, with the tokens to target" \
  '[ "$(target lm "m[\"train\"][\"steps\"], m[\"target\"][\"step\"], m[\"target\"][\"tokens\"] == m[\"train\"][\"tokens\"] > 0")" = "2 2 True" ] || { cat err_lm; false; }'
"$bin" train "${gpt2[@]}" --train.target "accuracy>=0.5" --run.name lm_bad 2> err_lm_bad
check "GPT-2 with an accuracy target: exit 1, naming what its evaluations report" \
  '[ $? -eq 1 ] && grep -q "report loss and perplexity" err_lm_bad && [ -z "$(run_of lm_bad)" ] || { cat err_lm_bad; false; }'

[ "$fails" -eq 0 ]
