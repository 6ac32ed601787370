#!/usr/bin/env bash
# Data-parallel `wattwise train` on CPU ranks (Gloo over loopback), end to end on generated data:
# - 2 and 3 ranks (train.batch_size is the global micro-batch, split over the ranks) give the
#   losses and gradient norms of one process within 1e-5 relative (plus train_log.csv's printing
#   unit) at each of 20 fp32 steps, and its final parameters within 1e-4 of the training's movement
#   per tensor (tools/compare_safetensors.py says why that unit; seen: up to 2.4e-5), for tiny BERT,
#   tiny DistilBERT and tiny GPT-2, with and without gradient accumulation, with a batch the ranks
#   split unevenly and with fewer rows than ranks;
# - started by `wattwise launch`, by hand with torchrun's variables, and with Open MPI's;
# - only rank 0 writes the run folder, and metrics.json says how the job ran;
# - gradients summed in buckets while backward goes on (several, one, or after backward) give the same;
# - ZeRO stages 1 and 2 (train.zero) give the same, with rank 0 holding 1/N of the optimizer state;
# - SIGINT to the job stops every rank at the same step (exit 130, a checkpoint); kill -9 and
#   --resume continue it bit for bit (same ranks) or within 1e-5 on another number of ranks, with
#   ZeRO 0, 1 and 2;
# - a killed rank makes the others exit non-zero promptly; ranks with different configurations,
#   a missing rank and a port in use are one clear error each.
# No sleep stands in for synchronisation: the tests wait for files with a deadline.
# Usage (ctest): bash train_distributed.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
checker=$src/tests/tools/check_metrics_json.py
metrics_doc=$src/docs/METRICS.md
compare=$src/tests/tools/compare_safetensors.py

python3 "$src/tests/tools/make_cli_data.py" 160

runs=$work/runs
# Dropout off (each rank draws its own masks), fp32, a constant schedule after a short warmup, a
# final checkpoint with the f32 masters (compared below).
common=(--train.hidden_dropout 0 --train.attention_dropout 0 --train.log_every 1 --run.progress none
        --run.output_dir "$runs" --run.device cpu
        --train.warmup_steps 2 --train.schedule constant --train.eval_every 10 --train.lr 1e-3)
bert=(--data.path "$work/train.tsv" --model.tokenizer "$work/tok" --data.max_length 16 --train.classifier_dropout 0 "${common[@]}")
distilbert=(--model.arch distilbert "${bert[@]}")
gpt2_data=(--model.tokenizer "$src/tests/fixtures/bpe/tiny" --data.path "$work/text.txt"
           --data.block_size 32 --data.cache_dir "$work/cache" --data.max_eval_examples 8 "${common[@]}")
gpt2=(--model.arch gpt2 --model.preset tiny "${gpt2_data[@]}")
gpt2_mini=(--model.arch gpt2 --model.preset mini "${gpt2_data[@]}")
run_of() { ls -d "$runs/"*_"$1" 2>/dev/null | head -1; }
newest_checkpoint() { ls "$1/checkpoints" 2>/dev/null | grep -E '^step_[0-9]+$' | sed 's/^step_//' | sort -n | tail -1; }
final_parameters() { echo "$1/checkpoints/step_$(newest_checkpoint "$1")/parameters.safetensors"; }
final_parameters_at() { echo "$1/checkpoints/step_$2/parameters.safetensors"; }
# Whether two runs' train_log.csv agree within a relative bound on loss and grad_norm, step by step.
same_log() {  # run-a run-b bound [grad-norm-bound]
  python3 - "$1/train_log.csv" "$2/train_log.csv" "$3" "${4:-$3}" <<'PY'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
bounds = {"loss": float(sys.argv[3]), "grad_norm": float(sys.argv[4])}
if [r["step"] for r in a] != [r["step"] for r in b]:
    sys.exit(f"steps differ: {[r['step'] for r in a]} against {[r['step'] for r in b]}")
# train_log.csv prints 6 significant digits: two values a rounding apart may differ by one unit of
# the sixth digit (up to 1e-5 relative) however close they were. That unit is allowed on top.
import math
worst, ok = 0.0, True
for x, y in zip(a, b):
    for key in ("loss", "grad_norm"):
        u, v = float(x[key]), float(y[key])
        unit = 10.0 ** (math.floor(math.log10(abs(u))) - 5) if u else 0.0
        worst = max(worst, abs(u - v) / max(abs(u), 1e-30))
        ok = ok and abs(u - v) <= bounds[key] * abs(u) + unit
print(f"  worst relative difference of loss and grad_norm over {len(a)} steps: {worst:.3g} (printed to 6 digits)")
sys.exit(0 if ok else 1)
PY
}
wait_until() {  # condition, pid
  local deadline=$((SECONDS + 300))
  until eval "$1"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$2" 2>/dev/null; then
      echo "FAIL: gave up waiting for: $1"; fails=$((fails + 1)); return 1
    fi
    sleep 0.05
  done
}

# --- equivalence: 1, 2 and 3 ranks, three models, with and without accumulation, uneven splits ---
equivalent() {  # label, model args..., then "--" and extra args
  local label=$1; shift
  local args=() extra=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@" "${steps20[@]}")
  "$bin" train "${args[@]}" "${extra[@]}" --run.name "${label}_1" --run.export_plan true 2> "$work/err_${label}_1" ||
    { echo "FAIL: $label: one process failed"; cat "$work/err_${label}_1"; fails=$((fails + 1)); return; }
  for n in 2 3; do
    "$bin" launch --nproc $n -- train "${args[@]}" "${extra[@]}" --run.name "${label}_$n" 2> "$work/err_${label}_$n"
    local rc=$?
    local one; one=$(run_of "${label}_1") many=$(run_of "${label}_$n")
    check "$label: $n ranks exit 0, one run folder" \
      '[ $rc -eq 0 ] && [ -d "$many" ] && [ "$(ls -d "$runs/"*_"${label}_$n" | wc -l)" -eq 1 ] || { cat "$work/err_${label}_$n"; false; }'
    check "$label: $n ranks: losses within 1e-5 of one process, gradient norms within ${grad_norm_bound:-1e-5}" \
      'same_log "$one" "$many" 1e-5 "${grad_norm_bound:-1e-5}"'
    check "$label: $n ranks: final parameters of one process within 1e-4 of the training's movement" \
      'python3 "$compare" "$(final_parameters "$one")" "$(final_parameters "$many")" 1e-4 --moved-from "$one/plan/initial_model/model.safetensors"'
  done
}
steps20=(--train.max_steps 20 --train.checkpoint_every 20)
equivalent bert "${bert[@]}" -- --train.batch_size 6
equivalent bert_accum "${bert[@]}" -- --train.batch_size 6 --train.grad_accum 2
equivalent bert_uneven "${bert[@]}" -- --train.batch_size 5
equivalent bert_fewer_rows "${bert[@]}" -- --train.batch_size 2 --train.bucket_mb 0.02  # on 3 ranks one has no rows
equivalent distilbert "${distilbert[@]}" -- --train.batch_size 6
equivalent gpt2 "${gpt2[@]}" -- --train.batch_size 6
equivalent gpt2_accum "${gpt2[@]}" -- --train.batch_size 4 --train.grad_accum 2
# ZeRO stage 1: each rank updates its part of the parameters (one process: nothing to shard)
equivalent bert_zero1 "${bert[@]}" -- --train.batch_size 6 --train.zero 1
equivalent gpt2_accum_zero1 "${gpt2[@]}" -- --train.batch_size 4 --train.grad_accum 2 --train.zero 1
equivalent distilbert_accum_zero1 "${distilbert[@]}" -- --train.batch_size 6 --train.grad_accum 2 --train.zero 1
equivalent gpt2_zero1 "${gpt2[@]}" -- --train.batch_size 6 --train.zero 1
# Gradient buckets summed while backward goes on: small buckets (several per step), and none
equivalent bert_buckets "${bert[@]}" -- --train.batch_size 6 --train.bucket_mb 0.02
equivalent gpt2_accum_buckets "${gpt2[@]}" -- --train.batch_size 4 --train.grad_accum 2 --train.bucket_mb 0.05
equivalent distilbert_one_sum "${distilbert[@]}" -- --train.batch_size 5 --train.bucket_mb 0
# ZeRO stage 2: each layer's gradients reduce-scattered as backward finishes them, from reused
# slots (4 layers: mini; GPT-2's tied embedding gradient written at both ends of backward; a rank
# without rows), and with 2 layers (tiny) the whole buffer reduce-scattered after backward
# (On the larger mini models the rounding of summation order grows to ~2e-5 in the gradient norm
# over 20 steps, with ZeRO 0 alike; losses stay within 1e-5.)
grad_norm_bound=1e-4
equivalent distilbert_zero2 "${distilbert[@]}" --model.preset mini -- --train.batch_size 6 --train.zero 2
equivalent gpt2_accum_zero2 "${gpt2_mini[@]}" -- --train.batch_size 5 --train.grad_accum 2 --train.zero 2
equivalent distilbert_zero2_fewer_rows "${distilbert[@]}" --model.preset mini -- --train.batch_size 2 --train.zero 2
grad_norm_bound=1e-5
equivalent gpt2_tiny_zero2 "${gpt2[@]}" -- --train.batch_size 4 --train.zero 2
equivalent bert_accum_zero2 "${bert[@]}" -- --train.batch_size 6 --train.grad_accum 2 --train.zero 2

# One rank through the data-parallel path (launch --nproc 1: torchrun-style, the collectives run):
# the same bits as one process.
"$bin" launch --nproc 1 -- train "${bert[@]}" --train.batch_size 6 "${steps20[@]}" --run.name bert_launch1 2> "$work/err_launch1"
check "launch --nproc 1: one process's losses and final parameters bit for bit, metrics.json says 1 rank" \
  '[ $? -eq 0 ] && same_log "$(run_of bert_1)" "$(run_of bert_launch1)" 0 &&
   cmp -s "$(final_parameters "$(run_of bert_1)")" "$(final_parameters "$(run_of bert_launch1)")" &&
   [ "$(json "$(run_of bert_launch1)/metrics.json" "m[\"distributed\"][\"ranks\"]")" = 1 ] || { cat "$work/err_launch1"; false; }'

B=$(run_of bert_2)
check "only rank 0 prints the run folder and writes it; metrics.json valid with the job's ranks" \
  '[ "$(grep -c "^run folder:" "$work/err_bert_2")" -eq "$(grep -c "^run folder:" "$work/err_bert_1")" ] &&
   [ "$(json "$B/metrics.json" "m[\"distributed\"][\"ranks\"], m[\"distributed\"][\"backend\"]")" = "2 gloo" ] &&
   python3 "$checker" train "$B/metrics.json" "$metrics_doc"'
state_bytes() { json "$1/metrics.json" 'm["distributed"]["optimizer_state_bytes"]'; }
Z=$(run_of bert_zero1_2)
check "ZeRO 1 on 2 ranks: metrics.json says so, and rank 0 holds half the optimizer state of ZeRO 0" \
  '[ "$(json "$Z/metrics.json" "m[\"distributed\"][\"zero\"]")" = 1 ] && [ "$(json "$B/metrics.json" "m[\"distributed\"][\"zero\"]")" = 0 ] &&
   python3 -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); sys.exit(0 if abs(2 * a - b) <= 8 else 1)" "$(state_bytes "$Z")" "$(state_bytes "$B")" ||
   { echo "zero 1: $(state_bytes "$Z") bytes, zero 0: $(state_bytes "$B")"; false; }'
Z2=$(run_of distilbert_zero2_3)
check "ZeRO 2 on 3 ranks: metrics.json says so; each rank holds a third of the optimizer state, the whole weights, and gradients of its part and two layers" \
  'python3 - "$Z2/metrics.json" "$Z2/best_model/model.safetensors" <<'"'"'PY'"'"'
import json, math, re, sys
z2 = json.load(open(sys.argv[1]))["distributed"]
assert z2["zero"] == 2, z2["zero"]
rows = z2["memory_per_rank"]
assert [r["rank"] for r in rows] == [0, 1, 2], rows
# The layer sizes from the tensor names of the model (4 layers: mini).
header = open(sys.argv[2], "rb")
size = int.from_bytes(header.read(8), "little")
tensors = {k: v for k, v in json.loads(header.read(size)).items() if k != "__metadata__"}
numel = sum(math.prod(v["shape"]) for v in tensors.values())
layers = {}
for name, v in tensors.items():
    m = re.search(r"\.layer\.(\d+)\.", name)
    if m: layers[m.group(1)] = layers.get(m.group(1), 0) + math.prod(v["shape"])
assert len(layers) == 4, layers
counts = [numel * (r + 1) // 3 - numel * r // 3 for r in range(3)]
for r, a in enumerate(rows):
    assert a["parameter_bytes"] == 4 * numel and a["activation_bytes"] > 0, a
    assert a["optimizer_state_bytes"] == 8 * counts[r], (a, counts)  # Adam: two moments of its part
    # Gradients: those of the embeddings and the head, two slots of a layer each and its part of the sums.
    assert a["gradient_bytes"] == 4 * (numel - sum(layers.values()) + 2 * max(layers.values()) + counts[r]), (a, layers)
    assert a["peak_memory_bytes"] >= a["parameter_bytes"] + a["gradient_bytes"] + a["optimizer_state_bytes"], a
print("  per rank of", 4 * numel, "bytes of weights: optimizer state", 8 * numel, "->", [r["optimizer_state_bytes"] for r in rows],
      "bytes, gradients", 4 * numel, "->", [r["gradient_bytes"] for r in rows])
PY'
buckets() { json "$(run_of "$1")/metrics.json" 'm["distributed"]["gradient_buckets"]'; }
check "gradient buckets: several with bucket_mb 0.02, one with the default 25 MiB, none with 0" \
  '[ "$(buckets bert_buckets_2)" -gt 2 ] && [ "$(buckets bert_2)" = 1 ] && [ "$(buckets distilbert_one_sum_3)" = 0 ] ||
   { echo "$(buckets bert_buckets_2) $(buckets bert_2) $(buckets distilbert_one_sum_3)"; false; }'
check "metrics.json: communication time and per-rank batch reported" \
  'python3 -c "import json,sys; d=json.load(open(sys.argv[1]))[\"distributed\"]; sys.exit(0 if d[\"communication_s\"] >= 0 and d[\"rows_per_rank\"] == [3, 3] else 1)" "$B/metrics.json"'

# --- the launchers' variables by hand: torchrun's and Open MPI's ---
# Starts ranks 0 and 1 of a job with the variables `vars` names (torchrun or mpirun) and the train
# arguments after it, stderr into $work/<name>_<rank>; sets rc0 and rc1.
two_ranks() {  # vars name train-args...
  local vars=$1 name=$2; shift 2
  local args=("$@")
  if [ "$vars" = torchrun ]; then
    ranks_on_free_port 2 "$work/${name}_0" 'WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$bin" train "${args[@]}" 2> "$work/${name}_$r"'
  else
    ranks_on_free_port 2 "$work/${name}_0" 'OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=$r OMPI_COMM_WORLD_LOCAL_RANK=$r \
      OMPI_COMM_WORLD_LOCAL_SIZE=2 MASTER_PORT=$port "$bin" train "${args[@]}" 2> "$work/${name}_$r"'
  fi
  read -r rc0 rc1 <<< "$rcs"
}
two_ranks torchrun tr "${bert[@]}" --train.batch_size 6 "${steps20[@]}" --run.name torchrun_vars
check "torchrun's variables by hand: both ranks exit 0, same run as launch's" \
  '[ $rc0 -eq 0 ] && [ $rc1 -eq 0 ] && same_log "$(run_of bert_2)" "$(run_of torchrun_vars)" 0 || { cat "$work/tr_0" "$work/tr_1"; false; }'
two_ranks mpirun mpi "${bert[@]}" --train.batch_size 6 "${steps20[@]}" --run.name mpi_vars
check "Open MPI's variables: both ranks exit 0, same run" \
  '[ $rc0 -eq 0 ] && [ $rc1 -eq 0 ] && same_log "$(run_of bert_2)" "$(run_of mpi_vars)" 0 || { cat "$work/mpi_0" "$work/mpi_1"; false; }'

# --- errors: different configurations, a missing rank, a port in use ---
ranks_on_free_port 2 "$work/mm_0" 'WORLD_SIZE=2 RANK=$r MASTER_PORT=$port "$bin" train "${bert[@]}" --train.batch_size 6 \
  --train.weight_decay "0.0$r" --run.name mismatch 2> "$work/mm_$r"'
read -r rc0 rc1 <<< "$rcs"
check "ranks with different configurations: both refuse (exit 1) in one line naming the other rank, no run folder" \
  '[ $rc0 -eq 1 ] && [ $rc1 -eq 1 ] && grep -q "^wattwise: error: rank 0: rank 1 started with a different configuration" "$work/mm_0" &&
   grep -q "rank 1: rank 0 started with a different configuration" "$work/mm_1" && [ "$(wc -l < "$work/mm_0")" -eq 1 ] &&
   [ -z "$(run_of mismatch)" ] || { cat "$work/mm_0" "$work/mm_1"; false; }'
ranks_on_free_port 1 "$work/missing" 'WORLD_SIZE=2 RANK=0 MASTER_PORT=$port "$bin" train "${bert[@]}" --train.batch_size 6 \
  --run.dist_timeout_s 2 --run.name missing 2> "$work/missing"'
rc=$rcs
check "a missing rank: rank 0 gives up after run.dist_timeout_s with one line, no run folder" \
  '[ $rc -eq 1 ] && grep -q "no rank set .fingerprint/1. within 2 s" "$work/missing" && [ -z "$(run_of missing)" ] ||
   { cat "$work/missing"; false; }'
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("0.0.0.0", 0)); s.listen(1); print(s.getsockname()[1], flush=True); time.sleep(120)' > "$work/busy_port" &
holder=$!
wait_until '[ -s "$work/busy_port" ]' $holder
busy=$(cat "$work/busy_port")
WORLD_SIZE=2 RANK=0 MASTER_PORT=$busy "$bin" train "${bert[@]}" --train.batch_size 6 --run.name busy 2> "$work/busy"
rc=$?
kill $holder 2>/dev/null
check "a port in use: one line naming it" \
  '[ $rc -eq 1 ] && grep -q "MASTER_PORT $busy is in use on this machine" "$work/busy" || { cat "$work/busy"; false; }'

# --- launch's own errors: one line, no rank started ---
"$bin" launch --nproc 2 -- predict --input x 2> "$work/launch_err"; rc=$?
check "launch runs train and bench only: exit 1, one line" \
  '[ $rc -eq 1 ] && [ "$(wc -l < "$work/launch_err")" -eq 1 ] && grep -q "only .train. and .bench. run distributed (got .predict.)" "$work/launch_err"'
"$bin" launch --nproc 0 -- train 2> "$work/launch_err"; rc=$?
check "launch --nproc 0: a usage error (exit 2) naming the range" '[ $rc -eq 2 ] && grep -q "nproc: Value 0 not in range 1 to 1024" "$work/launch_err"'

# --- a killed rank stops the others promptly ---
set -m
"$bin" launch --nproc 2 --grace 60 -- train "${bert[@]}" --train.batch_size 6 --train.max_steps 1000000 \
  --train.checkpoint_every 2 --run.name killed 2> "$work/killed" &
launcher=$!
set +m
wait_until '[ -n "$(newest_checkpoint "$(run_of killed)")" ]' $launcher
rank1=$(pgrep -P $launcher | sed -n 2p)
started=$SECONDS
kill -9 "$rank1"
wait $launcher
rc=$?
check "a killed rank: the job exits non-zero within 60 s, rank 0 saying another rank stopped" \
  '[ $rc -ne 0 ] && [ $((SECONDS - started)) -lt 60 ] && grep -q "another rank stopped or cannot be reached" "$work/killed" ||
   { echo "rc $rc after $((SECONDS - started)) s"; cat "$work/killed"; false; }'
check "a killed rank: status.json failed, checkpoints kept" \
  '[ "$(json "$(run_of killed)/status.json" "m[\"status\"]")" = failed ]'

# --- SIGINT to the job: every rank stops at the same step ---
set -m
"$bin" launch --nproc 2 -- train "${bert[@]}" --train.batch_size 6 --train.max_steps 1000000 \
  --train.checkpoint_every 2 --run.name sigint 2> "$work/sigint" &
launcher=$!
set +m
wait_until '[ -n "$(newest_checkpoint "$(run_of sigint)")" ]' $launcher
kill -INT $launcher
wait $launcher
rc=$?
I=$(run_of sigint)
step=$(json "$I/metrics.json" 'm["train"]["steps"]')
check "SIGINT to the job: exit 130, metrics.json interrupted, a checkpoint at the step it stopped, said once" \
  '[ $rc -eq 130 ] && [ "$(json "$I/metrics.json" "m[\"run\"][\"status\"]")" = interrupted ] &&
   [ "$(grep -c "SIGINT received" "$work/sigint")" -eq 1 ] &&
   [ "$(newest_checkpoint "$I")" = "$step" ] || { echo "rc $rc"; cat "$work/sigint"; false; }'

# --- kill -9 and resume: the same ranks bit for bit, other ranks within 1e-5 ---
# (a constant schedule: the step count given does not change the numbers)
resume_args=(--train.batch_size 6 --train.checkpoint_every 3 --train.checkpoint_keep 10)
# kill -9 a 2-rank job after its first checkpoint, then resume it on 2 ranks (against an
# uninterrupted job: losses and final checkpoint bit for bit) and, from the same checkpoint, on 3.
# Sets C to the resumed run.
# The optimizer state files of two checkpoints are the same files, byte for byte.
same_optimizer_files() {  # checkpoint-a checkpoint-b
  local f names_a names_b
  names_a=$(cd "$1" && ls optimizer*.safetensors) names_b=$(cd "$2" && ls optimizer*.safetensors)
  [ -n "$names_a" ] && [ "$names_a" = "$names_b" ] || { echo "optimizer files differ: $names_a / $names_b"; return 1; }
  for f in $names_a; do cmp -s "$1/$f" "$2/$f" || { echo "$f differs"; return 1; }; done
}
kill_and_resume() {  # label extra-train-args...
  local label=$1; shift
  "$bin" launch --nproc 2 -- train "${bert[@]}" "${resume_args[@]}" "$@" --train.max_steps 12 --run.name "whole_$label" \
    2> "$work/whole_$label"
  set -m
  "$bin" launch --nproc 2 -- train "${bert[@]}" "${resume_args[@]}" "$@" --train.max_steps 1000000 --run.name "cut_$label" \
    2> "$work/cut_$label" &
  launcher=$!
  set +m
  wait_until '[ -n "$(newest_checkpoint "$(run_of "cut_$label")")" ]' $launcher
  pkill -9 -P $launcher; kill -9 $launcher
  wait $launcher 2>/dev/null
  C=$(run_of "cut_$label") W=$(run_of "whole_$label")
  cp -r "$C" "$work/cut_copy"
  "$bin" launch --nproc 2 -- train --resume "$C" --train.max_steps 12 2> "$work/resume2"
  rc=$?
  check "$label: kill -9, resume on 2 ranks: losses and final checkpoint (parameters, optimizer state) bit for bit" \
    '[ $rc -eq 0 ] && same_log "$W" "$C" 0 && cmp -s "$(final_parameters "$W")" "$(final_parameters "$C")" &&
     same_optimizer_files "$W/checkpoints/step_12" "$C/checkpoints/step_12" ||
     { cat "$work/resume2"; false; }'
  rm -rf "$C"; mv "$work/cut_copy" "$C"
  "$bin" launch --nproc 3 -- train --resume "$C" --train.max_steps 12 2> "$work/resume3"
  rc=$?
  check "$label: the same checkpoint resumed on 3 ranks: losses within 1e-5, parameters within 1e-4 of the movement" \
    '[ $rc -eq 0 ] && same_log "$W" "$C" 1e-5 &&
     python3 "$compare" "$(final_parameters "$W")" "$(final_parameters "$C")" 1e-4 --moved-from "$(final_parameters_at "$W" 3)" ||
     { cat "$work/resume3"; false; }'
}
kill_and_resume zero0
"$bin" train --resume "$C" --train.max_steps 14 2> "$work/resume1"
check "and continued by one process" '[ $? -eq 0 ] && [ "$(json "$C/metrics.json" "m[\"train\"][\"steps\"]")" = 14 ]'
# ZeRO 1 and 2: each rank writes its part of the optimizer state; the parts are re-sharded when
# another number of ranks (or one process) resumes.
kill_and_resume zero1 --train.zero 1
shards_of() { json "$1/manifest.json" '" ".join(s["file"] for s in m["optimizer"]["shards"])'; }
check "zero1: the checkpoint holds one optimizer shard per rank, listed in its manifest" \
  '[ "$(cd "$W/checkpoints/step_12" && echo optimizer*.safetensors)" = "optimizer.rank0.safetensors optimizer.rank1.safetensors" ] &&
   [ "$(shards_of "$W/checkpoints/step_12")" = "optimizer.rank0.safetensors optimizer.rank1.safetensors" ]'
check "zero1: resumed on 3 ranks, its last checkpoint has 3 shards" \
  '[ "$(ls "$C/checkpoints/step_12"/optimizer.rank*.safetensors | wc -l)" -eq 3 ]'
"$bin" train --resume "$C" --train.max_steps 14 2> "$work/resume1"
rc=$?
check "zero1: a 3-shard checkpoint continued by one process (one optimizer file again)" \
  '[ $rc -eq 0 ] && [ "$(json "$C/metrics.json" "m[\"train\"][\"steps\"]")" = 14 ] &&
   [ -f "$C/checkpoints/step_14/optimizer.safetensors" ] || { cat "$work/resume1"; false; }'
kill_and_resume zero2 --train.zero 2
# ZeRO 2 with the gradients in slots (4 layers)
kill_and_resume zero2_slots --train.zero 2 --model.preset mini

echo "$fails failed"
[ "$fails" -eq 0 ]
