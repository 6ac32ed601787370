#!/usr/bin/env bash
# Overhead guards on the CPU (the GPU's, fused attention and CUDA graphs, are
# tests/experiment/overhead_guard_test.cpp): `train.bucket_mb auto` on 2 Gloo ranks measures steps
# with gradient sums in buckets and with one sum after backward, keeps or switches them off (said on
# stderr, recorded in a valid, documented metrics.json), and the run then trains bit for bit as the
# same run with the chosen bucket_mb fixed: dropout on, adaptive accumulation, the final parameters
# compared byte for byte. A resumed run applies its checkpoint's record instead of measuring again.
# On one CPU process model.attention fastest and run.cuda_graphs auto cannot be measured and say
# why; ZeRO 2 has no buckets to measure; bad values name the key and what it takes. A tiny BERT,
# seconds a run.
# Usage (ctest): bash train_overhead_guard.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md

python3 "$src/tests/tools/make_cli_data.py" 160
runs=$work/runs
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --run.output_dir "$runs"
      --run.device cpu --run.progress lines --train.batch_size 4 --train.max_steps 8 --train.grad_accum auto
      --train.grad_accum_max 4 --train.log_every 1 --train.eval_every 4 --train.checkpoint_every 8)
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
guard() { json "$(run_of "$1")/metrics.json" "m[\"execution\"][\"overhead_guards\"]$2"; }
# The training itself (step, epoch, loss, lr, grad_norm, grad_accum, effective_batch, noise_scale), not its speed.
training_of() { cut -d, -f1-5,8- "$(run_of "$1")/train_log.csv"; }

# --- one process on the CPU: nothing can be measured, each says why
"$bin" train "${bert[@]}" --model.attention fastest --run.cuda_graphs auto --train.bucket_mb auto --run.name single 2> err_single
check "one CPU process: three guards, none measured, each reason on stderr, a valid documented metrics.json" \
  '[ $? -eq 0 ] && grep -q "overhead guard: fused attention: not measured: the CPU runs the reference attention only" err_single &&
   grep -q "overhead guard: CUDA graphs: not measured: no CUDA graphs on the CPU" err_single &&
   grep -q "overhead guard: gradient sums overlapped with backward (buckets): not measured: one process" err_single &&
   [ "$(guard single "[\"guards\"].__len__()")" = 3 ] && [ "$(guard single "[\"steps\"]")" = 0 ] &&
   [ "$(json "$(run_of single)/metrics.json" "m[\"execution\"][\"attention\"]")" = reference ] &&
   [ "$(json "$(run_of single)/metrics.json" "m[\"execution\"][\"cuda_graphs\"]")" = False ] &&
   python3 "$checker" train "$(run_of single)/metrics.json" "$metrics_doc" || { cat err_single; false; }'
check "config.toml keeps the requests (a rerun measures again)" \
  'grep -Eq "^attention = .fastest.$" "$(run_of single)/config.toml" && grep -Eq "^cuda_graphs = .auto.$" "$(run_of single)/config.toml" &&
   grep -Eq "^bucket_mb = .auto.$" "$(run_of single)/config.toml"'

# --- two Gloo ranks: buckets measured, and the measurement leaves no trace
"$bin" launch --nproc 2 -- train "${bert[@]}" --train.bucket_mb auto --run.name guarded 2> err_guarded
check "2 ranks, bucket_mb auto: measured over 5 rounds each way, the verdict on stderr, a valid documented metrics.json" \
  '[ $? -eq 0 ] && grep -Eq "overhead guard: gradient sums overlapped with backward \(buckets\): .* per micro-batch with, .* without.*: (kept|switched off)" err_guarded &&
   [ "$(guard guarded "[\"guards\"][0][\"measured\"]")" = True ] && [ "$(guard guarded "[\"guards\"][0][\"with_s\"].__len__()")" = 5 ] &&
   [ "$(guard guarded "[\"guards\"][0][\"without_s\"].__len__()")" = 5 ] && [ "$(guard guarded "[\"steps\"]")" -gt 0 ] &&
   python3 "$checker" train "$(run_of guarded)/metrics.json" "$metrics_doc" || { cat err_guarded; false; }'
chosen=$(guard guarded '["guards"][0]["value"]')
check "the choice is what the run trained with: 25 MiB buckets (one, for this model) or none" \
  'buckets=$(json "$(run_of guarded)/metrics.json" "m[\"distributed\"][\"gradient_buckets\"]") &&
   { [ "$chosen" = 25.0 ] && [ "$buckets" = 1 ]; } || { [ "$chosen" = 0.0 ] && [ "$buckets" = 0 ]; }'
"$bin" launch --nproc 2 -- train "${bert[@]}" --train.bucket_mb "$chosen" --run.name fixed 2> err_fixed
check "the same run with bucket_mb $chosen fixed trains bit for bit alike (losses, norms, adaptive k, parameters)" \
  '[ $? -eq 0 ] && [ "$(training_of guarded)" = "$(training_of fixed)" ] &&
   cmp "$(run_of guarded)/checkpoints/step_8/parameters.safetensors" "$(run_of fixed)/checkpoints/step_8/parameters.safetensors" ||
   { cat err_fixed; diff <(training_of guarded) <(training_of fixed); false; }'

# --- a resumed run applies the record
"$bin" launch --nproc 2 -- train --resume "$(run_of guarded)" --train.max_steps 12 --train.checkpoint_every 12 2> err_resume
check "resumed: the checkpoint's choices, not a new measurement; metrics.json keeps the record" \
  '[ $? -eq 0 ] && grep -q "overhead guards: the choices the checkpoint recorded" err_resume && ! grep -q "per micro-batch with" err_resume &&
   [ "$(guard guarded "[\"guards\"][0][\"value\"]")" = "$chosen" ] || { cat err_resume; false; }'

# --- ZeRO 2 sums layer by layer: nothing to measure
"$bin" launch --nproc 2 -- train "${bert[@]}" --train.bucket_mb auto --train.zero 2 --run.name zero2 2> err_zero2
check "ZeRO 2: not measured, the reason said" \
  '[ $? -eq 0 ] && grep -q "not measured: ZeRO 2 sums the gradients layer by layer" err_zero2 || { cat err_zero2; false; }'

# --- bad values
"$bin" train "${bert[@]}" --run.cuda_graphs maybe 2> err_bad1
check "run.cuda_graphs maybe: the key and its values, exit 2 or 1, no run folder" \
  'rc=$?; [ $rc -ne 0 ] && grep -q "invalid value .maybe. for run.cuda_graphs (expected true, false or auto)" err_bad1 || { cat err_bad1; false; }'
"$bin" train "${bert[@]}" --train.bucket_mb fast 2> err_bad2
check "train.bucket_mb fast: a number or auto" \
  '[ $? -ne 0 ] && grep -q "invalid value .fast. for train.bucket_mb (expected a finite number or auto)" err_bad2 || { cat err_bad2; false; }'
"$bin" train "${bert[@]}" --model.attention quickest 2> err_bad3
check "model.attention quickest: the choices, fastest among them" \
  '[ $? -ne 0 ] && grep -q "expected one of auto, fused, reference, fastest" err_bad3 || { cat err_bad3; false; }'
check "bad values start no run" '[ "$(ls "$runs" | wc -l)" = 4 ]'
[ $fails -eq 0 ]
