#!/usr/bin/env bash
# `wattwise train --train.grad_accum auto`: adaptive accumulation end to end on a tiny BERT. The log
# has each step's k, examples and noise scale, k stays within its bounds, metrics.json's
# train.adaptive_accumulation adds up and is documented; the same seed gives the same steps; a run
# resumed from its checkpoint takes the uninterrupted run's steps; two ranks (ZeRO 2) run it; bad
# combinations are one line naming the key, before any run folder. Each run well under a second.
# Usage (ctest): bash train_adaptive.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

python3 "$src/tests/tools/make_cli_data.py" 160
runs=$work/runs
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --run.output_dir "$runs"
      --run.device cpu --train.batch_size 4 --train.schedule constant --train.lr 1e-3 --train.log_every 1
      --train.grad_accum auto --train.grad_accum_max 6 --train.eval_every 0)
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
# The log's columns that do not depend on timing: step, epoch, loss, lr, grad_norm, k, examples, noise.
steps_of() { cut -d, -f1-5,8- "$(run_of "$1")/train_log.csv"; }

"$bin" train "${bert[@]}" --train.max_steps 10 --run.name a 2> err_a
check "an adaptive run completes; metrics.json valid and documented" \
  '[ $? -eq 0 ] && python3 "$checker" train "$(run_of a)/metrics.json" "$metrics_doc" || { cat err_a; false; }'
check "train_log.csv: k within 2..6 every step, examples = 4 k, the noise scale from the first step on, lr x sqrt(k/2)" \
  'python3 - "$(run_of a)/train_log.csv" <<'"'"'PY'"'"'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert list(rows[0])[-3:] == ["grad_accum", "effective_batch", "noise_scale"], list(rows[0])
assert [int(r["step"]) for r in rows] == list(range(1, 11)), rows
for r in rows:
    k = int(r["grad_accum"])
    assert 2 <= k <= 6, r
    assert int(r["effective_batch"]) <= 4 * k, r
    assert r["noise_scale"] != "", r
    assert abs(float(r["lr"]) - 1e-3 * math.sqrt(k / 2)) <= 1e-6 * float(r["lr"]), r
assert int(rows[0]["grad_accum"]) == 2, rows[0]  # nothing measured before the first step
PY'
check "metrics.json: steps by k add up, mean k = micro-batches / steps, the examples are the steps' sum" \
  'python3 - "$(run_of a)/metrics.json" "$(run_of a)/train_log.csv" <<'"'"'PY'"'"'
import csv, json, sys
m = json.load(open(sys.argv[1]))
a = m["train"]["adaptive_accumulation"]
rows = list(csv.DictReader(open(sys.argv[2])))
ks = [int(r["grad_accum"]) for r in rows]
assert (a["min"], a["max"], a["lr_scaling"], a["measurements"]) == (2, 6, "sqrt", 10), a
assert a["steps_by_grad_accum"] == {str(k): ks.count(k) for k in set(ks)}, (a, ks)
assert abs(a["mean_grad_accum"] - sum(ks) / len(ks)) < 1e-12, a
assert m["train"]["examples"] == sum(int(r["effective_batch"]) for r in rows), m["train"]
assert 2 <= a["next_grad_accum"] <= 6, a
PY'

"$bin" train "${bert[@]}" --train.max_steps 10 --run.name again 2> err_again
check "the same seed: the same steps, k and noise scale" '[ "$(steps_of a)" = "$(steps_of again)" ] || { cat err_again; false; }'

# Resumed from the checkpoint written at step 6: steps 7..10 as the uninterrupted run took them.
"$bin" train "${bert[@]}" --train.max_steps 6 --train.checkpoint_every 6 --run.name part 2> err_part
"$bin" train --resume "$(run_of part)" --train.max_steps 10 2> err_resume
check "resumed at step 6: the uninterrupted run's 10 steps (k, noise scale and losses)" \
  '[ "$(steps_of a)" = "$(steps_of part)" ] || { diff <(steps_of a) <(steps_of part); cat err_part err_resume; false; }'

# Two ranks, ZeRO 2: every rank chooses the same k (different ones would hang or fail the step).
"$bin" launch --nproc 2 -- train "${bert[@]}" --train.max_steps 6 --train.zero 2 --run.name ranks 2> err_ranks
check "two ranks, ZeRO 2: completes, metrics.json valid, k logged within bounds" \
  '[ $? -eq 0 ] && python3 "$checker" train "$(run_of ranks)/metrics.json" "$metrics_doc" &&
   [ "$(json "$(run_of ranks)/metrics.json" "m[\"distributed\"][\"ranks\"], m[\"train\"][\"adaptive_accumulation\"][\"measurements\"]")" = "2 6" ] || { cat err_ranks; false; }'

# Bad combinations: one line naming the key, no run folder.
bad() {
  local name=$1 key=$2
  shift 2
  "$bin" train "$@" --run.name "$name" 2> "err_$name"
  local rc=$?
  check "$name: exit 1, one line naming $key, no run folder" \
    '[ $rc -eq 1 ] && [ "$(wc -l < "err_$name")" -eq 1 ] && grep -q "$key" "err_$name" && [ -z "$(run_of "$name")" ] || { cat "err_$name"; false; }'
}
common=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --run.output_dir "$runs" --run.device cpu)
bad by_epochs "train.grad_accum auto needs train.max_steps" "${common[@]}" --train.grad_accum auto --train.epochs 1
bad min_one "train.grad_accum_min" "${common[@]}" --train.grad_accum auto --train.max_steps 3 --train.grad_accum_min 1
bad max_below "train.grad_accum_max" "${common[@]}" --train.grad_accum auto --train.max_steps 3 --train.grad_accum_min 8 --train.grad_accum_max 4
bad fixed_max "train.grad_accum_max applies only" "${common[@]}" --train.grad_accum 4 --train.max_steps 3 --train.grad_accum_max 8
bad word "train.grad_accum" "${common[@]}" --train.grad_accum sometimes --train.max_steps 3
bad plan "run.export_plan" "${common[@]}" --train.grad_accum auto --train.max_steps 3 --run.export_plan true

[ $fails -eq 0 ]
