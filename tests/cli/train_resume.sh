#!/usr/bin/env bash
# `wattwise train` interrupted and resumed, end to end on generated data (no shared data needed):
# SIGINT and SIGTERM mid-run stop at a step boundary with exit 130 / 143 and leave logs, emissions,
# a checkpoint and a metrics.json marked interrupted (valid per docs/METRICS.md); a second signal
# stops at once; kill -9 after a train.checkpoint_every checkpoint, then `train --resume`, gives the
# uninterrupted run's losses, final checkpoint and best_model/ bit for bit (tiny BERT with dropout
# and grad_accum 2; tiny GPT-2); resume errors (no checkpoint, another configuration, a forbidden
# flag, a damaged or incomplete checkpoint, a completed run, a folder in use) leave the folder as it
# was; train.checkpoint_keep prunes; status.json says how each run ended (failed runs keep what they
# wrote, or vanish when no step completed).
#
# No sleep stands in for synchronisation: the tests wait for files (a complete checkpoint, an
# evaluation line on stderr) with a deadline, and the runs that get killed are given far more steps
# than they can take meanwhile (constant schedule, so the step count does not change the numbers;
# the resumed and reference runs then stop at the same train.max_steps).
# Usage (ctest): bash train_resume.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

# --- data: the sentiment task of train_cli.sh, and English-like text for GPT-2 ---
python3 "$src/tests/tools/make_cli_data.py" 96

runs=$work/runs
# Dropout on, 2 micro-batches per step, a warmup over the first steps (the schedule position is
# restored), evaluations, a test split.
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --train.batch_size 4
      --train.grad_accum 2 --train.lr 1e-3 --train.schedule constant --train.warmup_steps 3 --train.hidden_dropout 0.1
      --train.eval_every 5 --data.test_split test --train.log_every 1 --run.progress none --run.output_dir "$runs")
gpt2=(--model.arch gpt2 --model.preset tiny --model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt"
      --data.block_size 32 --data.cache_dir "$work/cache" --data.max_eval_examples 8 --train.batch_size 4
      --train.grad_accum 2 --train.lr 3e-3 --train.schedule constant --train.warmup_steps 3 --train.hidden_dropout 0.1
      --train.attention_dropout 0.1 --train.eval_every 5 --run.device cpu --train.log_every 1 --run.progress none
      --run.output_dir "$runs")
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
losses() { cut -d, -f1-5 "$1/train_log.csv"; }  # step,epoch,loss,lr,grad_norm (not timings)
hashes() { (cd "$1" && sha256sum parameters.safetensors optimizer.safetensors); }
newest_checkpoint() { ls "$1/checkpoints" 2>/dev/null | grep -E '^step_[0-9]+$' | sed 's/^step_//' | sort -n | tail -1; }
no_debris() { [ -z "$(find "${1:-$runs}" -name '.*.tmp-*' -o -name '*.partial' -o -name '*.old')" ]; }
snapshot() { (cd "$1" && find . -type f -exec sha1sum {} + | sort); }
one_line_error() { [ "$1" -eq 1 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -q -- "$2" "$work/err"; }

# Starts a training run in the background as its own process group (so SIGINT is not ignored, as
# a shell ignores it for background jobs otherwise); sets $pid.
start() {
  set -m
  "$bin" train "$@" 2>"$work/bg_err" &
  pid=$!
  set +m
}
# Waits (up to 300 s, for a loaded machine) until CONDITION holds; fails the test otherwise.
wait_until() {
  local deadline=$((SECONDS + 300))
  until eval "$1"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "FAIL: gave up waiting for: $1"; cat "$work/bg_err"; kill -9 "$pid" 2>/dev/null; fails=$((fails + 1))
      return 1
    fi
    sleep 0.05
  done
}
# The exit status of the background run (killed after 300 s if it hangs).
finish() {
  local deadline=$((SECONDS + 300))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid"
}
has_checkpoint() { [ -n "$(newest_checkpoint "$(run_of "$1")")" ]; }

# --- SIGINT mid-run: stops at a step boundary, writes everything, exit 130 ---
start "${bert[@]}" --run.name sigint --train.max_steps 1000000 --train.checkpoint_every 3
wait_until 'has_checkpoint sigint'
kill -INT "$pid"
finish
rc=$?
I=$(run_of sigint)
cp "$work/bg_err" "$work/sigint_err"
step=$(json "$I/metrics.json" 'm["train"]["steps"]')
check "SIGINT: exit 130" '[ $rc -eq 130 ]'
check "SIGINT: says so at once, then where the run and checkpoint are and how to resume" \
  'grep -q "SIGINT received: finishing the current step" "$work/sigint_err" &&
   grep -q "interrupted by SIGINT at step $step of 1000000" "$work/sigint_err" &&
   grep -q "checkpoint: $I/checkpoints/step_$step\$" "$work/sigint_err" &&
   grep -q "to continue: wattwise train --resume $I\$" "$work/sigint_err"'
check "SIGINT: metrics.json marked interrupted (signal and step), valid per docs/METRICS.md" \
  '[ "$(json "$I/metrics.json" "m[\"run\"][\"status\"], m[\"run\"][\"interruption\"][\"signal\"], m[\"run\"][\"interruption\"][\"step\"] == m[\"train\"][\"steps\"], m[\"test\"]")" = "interrupted SIGINT True None" ] &&
   python3 "$checker" train "$I/metrics.json" "$metrics_doc"'
check "SIGINT: a checkpoint at the step it stopped, complete" \
  '[ "$(newest_checkpoint "$I")" = "$step" ] && [ -f "$I/checkpoints/step_$step/manifest.json" ] &&
   [ "$(json "$I/metrics.json" "m[\"run\"][\"checkpoint\"]")" = "$I/checkpoints/step_$step" ]'
check "SIGINT: train_log.csv flushed, one row per step up to it" \
  '[ "$(tail -n +2 "$I/train_log.csv" | cut -d, -f1 | tr "\n" " ")" = "$(seq -s " " 1 "$step") " ]'
check "SIGINT: emissions.csv has this session's row, power_trace.csv its samples" \
  '[ "$(wc -l < "$I/emissions.csv")" -eq 2 ] && [ "$(wc -l < "$I/power_trace.csv")" -ge 2 ]'
check "SIGINT: status.json interrupted" \
  '[ "$(json "$I/status.json" "m[\"status\"], m[\"signal\"], m[\"step\"]")" = "interrupted SIGINT $step" ]'
check "SIGINT: best_model/ of the evaluations so far (one every 5 steps)" \
  '[ $step -lt 5 ] || [ -f "$I/best_model/model.safetensors" ]'

# --- SIGTERM, checkpoints only when interrupted: wait for an evaluation line, exit 143 ---
start "${bert[@]}" --run.name sigterm --train.max_steps 1000000 --set train.eval_every=2 --set run.progress=lines
wait_until 'grep -q "eval at step 2 " "$work/bg_err"'
kill -TERM "$pid"
finish
rc=$?
T=$(run_of sigterm)
step=$(json "$T/metrics.json" 'm["train"]["steps"]')
check "SIGTERM: exit 143, metrics.json interrupted by SIGTERM, valid" \
  '[ $rc -eq 143 ] && [ "$(json "$T/metrics.json" "m[\"run\"][\"interruption\"][\"signal\"]")" = SIGTERM ] &&
   python3 "$checker" train "$T/metrics.json" "$metrics_doc"'
check "SIGTERM with checkpoint_every 0: exactly one checkpoint, at the step it stopped" \
  '[ "$(ls "$T/checkpoints")" = "step_$step" ]'
check "SIGTERM: train_log.csv rows up to that step, emissions.csv row" \
  '[ "$(tail -1 "$T/train_log.csv" | cut -d, -f1)" = "$step" ] && [ "$(wc -l < "$T/emissions.csv")" -eq 2 ]'

# --- a second signal stops at once (both delivered while the process is stopped; which one comes
# first is up to the kernel: any thread of the process may take either) ---
start "${bert[@]}" --run.name twice --train.max_steps 1000000 --train.checkpoint_every 2
wait_until 'has_checkpoint twice'
kill -STOP "$pid"
kill -INT "$pid"
kill -TERM "$pid"
kill -CONT "$pid"
finish
rc=$?
W=$(run_of twice)
check "second signal: the process ends at once by it (SIGTERM after SIGINT: 143, SIGINT after SIGTERM: 130)" \
  '{ [ $rc -eq 143 ] && grep -q "SIGINT received" "$work/bg_err" && grep -q "second signal (SIGTERM): stopping at once" "$work/bg_err"; } ||
   { [ $rc -eq 130 ] && grep -q "SIGTERM received" "$work/bg_err" && grep -q "second signal (SIGINT): stopping at once" "$work/bg_err"; } ||
   { echo "exit $rc; stderr:"; cat "$work/bg_err"; false; }'
check "second signal: no metrics.json, status.json still says running, checkpoints intact" \
  '[ ! -e "$W/metrics.json" ] && [ "$(json "$W/status.json" "m[\"status\"]")" = running ] &&
   [ -f "$W/checkpoints/step_$(newest_checkpoint "$W")/manifest.json" ]'

W_step=$(newest_checkpoint "$W")
"$bin" train --resume "$W" --train.max_steps $((W_step + 2)) 2>"$work/err"
check "second signal: resume from the newest checkpoint works (and clears what the kill left)" \
  '[ $? -eq 0 ] && [ "$(json "$W/metrics.json" "m[\"train\"][\"steps\"], m[\"run\"][\"status\"]")" = "$((W_step + 2)) completed" ] && no_debris "$W"'

# --- kill -9 after a checkpoint, resume: the uninterrupted run bit for bit ---
# The killed run may be anywhere after its first checkpoint (perhaps mid-write of a later one: that
# partial folder is ignored and removed); the resumed and reference runs stop at the same step.
same_as_uninterrupted() {  # $1 name, then the task's flags
  local name=$1
  shift
  start "$@" --run.name "$name" --train.max_steps 1000000 --train.checkpoint_every 3
  wait_until "has_checkpoint $name"
  kill -9 "$pid"
  finish
  local K
  K=$(run_of "$name")
  local from
  from=$(newest_checkpoint "$K")
  local end=$((from + 8))
  "$bin" train --resume "$K" --train.max_steps $end 2>"$work/err"
  check "$name: resume after kill -9 (from step $from) to step $end exits 0" '[ $? -eq 0 ]'
  "$bin" train "$@" --run.name "${name}_ref" --train.max_steps $end --train.checkpoint_every 3 2>"$work/err"
  local F
  F=$(run_of "${name}_ref")
  check "$name: train_log.csv losses identical to the uninterrupted run's (steps 1..$end, once each)" \
    '[ "$(losses "$K")" = "$(losses "$F")" ] && [ "$(tail -n +2 "$K/train_log.csv" | cut -d, -f1 | tr "\n" " ")" = "$(seq -s " " 1 $end) " ]'
  check "$name: final checkpoint (parameters, optimizer state) identical" \
    '[ "$(hashes "$K/checkpoints/step_$end")" = "$(hashes "$F/checkpoints/step_$end")" ]'
  check "$name: best_model/ identical" \
    'cmp -s "$K/best_model/model.safetensors" "$F/best_model/model.safetensors"'
  check "$name: metrics.json of the whole run: completed, resumed once, same steps/examples/best, valid" \
    '[ "$(json "$K/metrics.json" "m[\"run\"][\"status\"], m[\"run\"][\"resumes\"], m[\"train\"][\"steps\"], m[\"train\"][\"examples\"], m[\"best\"]")" = \
       "$(json "$F/metrics.json" "\"completed\", 1, m[\"train\"][\"steps\"], m[\"train\"][\"examples\"], m[\"best\"]")" ] &&
     python3 "$checker" train "$K/metrics.json" "$metrics_doc"'
  check "$name: energy accumulated over both sessions (training samples = all examples), eval history complete" \
    '[ "$(json "$K/metrics.json" "m[\"energy\"][\"phases\"][\"training\"][\"samples\"] == (m[\"train\"].get(\"tokens\") or m[\"train\"][\"examples\"]), [h[\"step\"] for h in m[\"eval_history\"]]")" = \
       "$(json "$F/metrics.json" "True, [h[\"step\"] for h in m[\"eval_history\"]]")" ]'
  check "$name: the resumed session has its own power trace and emissions row" \
    '[ -s "$K/power_trace_2.csv" ] && [ "$(wc -l < "$K/emissions.csv")" -eq 2 ]'
  check "$name: status.json completed, no partial checkpoint left" \
    '[ "$(json "$K/status.json" "m[\"status\"], m[\"resumes\"]")" = "completed 1" ] && no_debris "$K"'
}
same_as_uninterrupted bert "${bert[@]}"
same_as_uninterrupted gpt2 "${gpt2[@]}"

# --- the SIGTERM-interrupted run resumed: identical to a run never interrupted ---
T_step=$(json "$T/metrics.json" 'm["train"]["steps"]')
"$bin" train --resume "$T" --train.max_steps $((T_step + 4)) --run.progress none 2>"$work/err"
check "SIGTERM run resumed: exit 0, completed, resumed once" \
  '[ $? -eq 0 ] && [ "$(json "$T/metrics.json" "m[\"run\"][\"status\"], m[\"run\"][\"resumes\"]")" = "completed 1" ]'
"$bin" train "${bert[@]}" --run.name sigterm_ref --train.max_steps $((T_step + 4)) --set train.eval_every=2 2>"$work/err"
check "SIGTERM run resumed: losses and best_model/ identical to the uninterrupted run's" \
  '[ "$(losses "$T")" = "$(losses "$(run_of sigterm_ref)")" ] &&
   cmp -s "$T/best_model/model.safetensors" "$(run_of sigterm_ref)/best_model/model.safetensors"'

# --- resume errors: one line naming the file, non-zero exit, the folder untouched ---
"$bin" train "${bert[@]}" --run.name plain --train.max_steps 4 2>"$work/err"
P=$(run_of plain)
before=$(snapshot "$P")
"$bin" train --resume "$P" 2>"$work/err"
check "resume a run without checkpoint: exit 1, one line" 'one_line_error $? "no training checkpoint to resume from"'
"$bin" train --resume "$work/nowhere" 2>"$work/err"
check "resume a missing folder: exit 1 naming it" 'one_line_error $? "nowhere: no such run folder"'
"$bin" train --resume "$P" --train.lr 1e-4 2>"$work/err"
check "resume with a flag that changes the run: refused, naming it" \
  'one_line_error $? "--train.lr: train.lr cannot change when resuming"'
"$bin" train --resume "$P" --config "$P/config.toml" 2>"$work/err"
check "resume with --config: refused" 'one_line_error $? "--config cannot be combined"'
check "errors left the folder as it was" '[ "$(snapshot "$P")" = "$before" ]'

# A run with a final checkpoint: completed (resume refused unless extended), damaged, edited.
"$bin" train "${bert[@]}" --run.name done --train.max_steps 7 --train.checkpoint_every 3 2>"$work/err"
D=$(run_of done)
check "checkpoint_every 3, keep 2, 7 steps: step_6 and the final step_7 kept" '[ "$(ls "$D/checkpoints" | tr "\n" " ")" = "step_6 step_7 " ]'
before=$(snapshot "$D")
"$bin" train --resume "$D" 2>"$work/err"
check "resume a completed run: refused, saying how to extend it" \
  'one_line_error $? "completed its 7 steps; give a larger --train.max_steps"'
sed -i 's/^lr = .*/lr = 0.002/' "$D/config.toml"
"$bin" train --resume "$D" --train.max_steps 9 2>"$work/err"
check "resume after config.toml changed: refused, naming the file and the key" \
  'one_line_error $? "$D/config.toml: not the configuration checkpoint step_7 was written with (train.lr was .0.001., is .0.002.)"'
sed -i 's/^lr = .*/lr = 0.001/' "$D/config.toml"
cp "$D/checkpoints/step_7/optimizer.safetensors" "$work/saved_optimizer"
printf 'X' | dd of="$D/checkpoints/step_7/optimizer.safetensors" bs=1 seek=200 conv=notrunc 2>/dev/null
"$bin" train --resume "$D" --train.max_steps 9 2>"$work/err"
check "resume from a damaged file: refused, naming it (and the older checkpoint)" \
  'one_line_error $? "step_7/optimizer.safetensors: damaged (CRC-32 .*step_6 remains"'
cp "$work/saved_optimizer" "$D/checkpoints/step_7/optimizer.safetensors"
head -c 1000 "$D/checkpoints/step_7/parameters.safetensors" > "$work/truncated"
cp "$D/checkpoints/step_7/parameters.safetensors" "$work/saved_parameters"
cp "$work/truncated" "$D/checkpoints/step_7/parameters.safetensors"
"$bin" train --resume "$D" --train.max_steps 9 2>"$work/err"
check "resume from a truncated file: refused, naming it" \
  'one_line_error $? "step_7/parameters.safetensors: damaged or truncated (1000 bytes"'
cp "$work/saved_parameters" "$D/checkpoints/step_7/parameters.safetensors"
mv "$D/checkpoints/step_7/manifest.json" "$work/saved_manifest"
"$bin" train --resume "$D" --train.max_steps 9 2>"$work/err"
check "resume from a checkpoint without its manifest: refused, naming it" \
  'one_line_error $? "step_7/manifest.json: missing (an incomplete checkpoint)"'
mv "$work/saved_manifest" "$D/checkpoints/step_7/manifest.json"
check "none of these errors changed the folder" '[ "$(snapshot "$D")" = "$before" ]'
"$bin" train --resume "$D" --train.max_steps 5 2>"$work/err"
check "resume with train.max_steps below the checkpoint's step: refused" \
  'one_line_error $? "train.max_steps: the run is at step 7, past the 5 steps"'
flock -n "$D" "$bin" train --resume "$D" --train.max_steps 9 2>"$work/err"
check "resume while another process holds the folder: refused" \
  'one_line_error $? "another wattwise process is training in this run folder"'
"$bin" train --resume "$D" --train.max_steps 9 2>"$work/err"
check "a completed run extended by train.max_steps: goes on to step 9" \
  '[ $? -eq 0 ] && [ "$(json "$D/metrics.json" "m[\"train\"][\"steps\"], m[\"run\"][\"status\"]")" = "9 completed" ] &&
   [ "$(tail -n +2 "$D/train_log.csv" | cut -d, -f1 | tr "\n" " ")" = "$(seq -s " " 1 9) " ] &&
   grep -q "^max_steps = 9$" "$D/config.toml"'

# --- checkpoint_keep ---
"$bin" train "${bert[@]}" --run.name keep3 --train.max_steps 11 --train.checkpoint_every 2 --train.checkpoint_keep 3 2>"$work/err"
check "checkpoint_keep 3: the newest three (step_8, step_10, final step_11)" \
  '[ "$(ls "$(run_of keep3)/checkpoints" | sort -t_ -k2 -n | tr "\n" " ")" = "step_8 step_10 step_11 " ]'
"$bin" train "${bert[@]}" --run.name keep1 --train.max_steps 5 --train.checkpoint_every 1 --train.checkpoint_keep 1 2>"$work/err"
check "checkpoint_keep 1: only the final one" '[ "$(ls "$(run_of keep1)/checkpoints")" = step_5 ]'
check "checkpoints hold best_model/ as hard links to the run's (no copy)" \
  '[ "$(stat -c %i "$(run_of keep1)/checkpoints/step_5/best_model/model.safetensors")" = "$(stat -c %i "$(run_of keep1)/best_model/model.safetensors")" ]'

# --- failed runs: status.json says so and keeps what was written; before any step, no folder ---
"$bin" train "${bert[@]}" --run.name nan --set train.lr=1e30 --train.max_grad_norm 0 --train.max_steps 20 2>"$work/err"
rc=$?
N=$(run_of nan)
check "a run failing after its first steps (non-finite loss): exit 1, one line" 'one_line_error $rc "not finite"'
check "the failed run keeps its folder; status.json failed with the error and the step reached" \
  '[ -d "$N" ] && [ ! -e "$N/metrics.json" ] && [ -f "$N/config.toml" ] &&
   [ "$(json "$N/status.json" "m[\"status\"], m[\"step\"] >= 1, \"not finite\" in m[\"error\"]")" = "failed True True" ]'
count_runs() { find "$runs" -mindepth 1 -maxdepth 1 | wc -l; }
runs_before=$(count_runs)
(ulimit -f 1; exec "$bin" train "${bert[@]}" --run.name early --train.max_steps 4) 2>"$work/err"
check "a run failing before its first step (config.toml over a 1 KiB file limit): exit 1, no folder left" \
  'one_line_error $? "File too large" && [ "$(count_runs)" -eq "$runs_before" ]'
(ulimit -f 64; exec "$bin" train "${bert[@]}" --run.name late --train.max_steps 6) 2>"$work/err"
rc=$?
L=$(run_of late)
check "a run failing after steps (best_model over a 64 KiB limit): folder kept, status.json failed" \
  'one_line_error $rc "File too large" && [ "$(json "$L/status.json" "m[\"status\"]")" = failed ] && no_debris'

check "no temporary files or partial folders left anywhere" 'no_debris'
echo "$fails failed"
[ $fails -eq 0 ]
