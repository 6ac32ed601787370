#!/usr/bin/env bash
# One GPU call: where does the time go? Builds wattwise, then
#   1. GPT-2 124M training (16 x 1024, bf16) timed plainly, then one short run under Nsight Compute
#      (kernel durations only, clocks untouched) aggregated per kernel name;
#   2. the same profile for `wattwise bench --case distilbert-train-bf16` and bert-infer-fp16-b1;
#   3. issue 7's sweep over fp32/fp16/int8-weight/fp8 on a BERT-base model trained briefly on SST-2.
# Carry .deps and .gpu-carry (data/tokenizers/{bert-base-uncased,gpt2}, data/glue/SST-2,
# data/tinyshakespeare). Results: $OUT/summary.txt, $OUT/results.tgz (+ pareto.csv, report.html).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
res=/tmp/ww-res; rm -rf $res; mkdir -p $res
summary=$OUT/summary.txt
say() { echo "$*" | tee -a "$summary"; }
finish() { tar czf "$OUT/results.tgz" -C $res . 2>/dev/null; }
trap finish EXIT
source scripts/gpu/setup-deps.sh
data=$PWD/.gpu-carry/data
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee -a "$summary"
start=$(date +%s)
targets=${WW_TEST_TARGETS:-}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > $res/build.log 2>&1 &&
  cmake --build build -j 16 --target wattwise $targets >> $res/build.log 2>&1 ||
  { grep -E "error" -A3 $res/build.log | head -40 | tee -a "$summary"; exit 1; }
say "build: $(( $(date +%s) - start )) s"

for t in $targets; do
  timeout 120 build/tests/$t > $res/$t.log 2>&1; rc=$?
  say "$t: rc $rc, $(grep -cE '^\[       OK' $res/$t.log) ok, $(grep -cE '^\[  FAILED' $res/$t.log) failed lines"
  grep -E "^\[  FAILED|Failure|error:|Expected|Which is|actual" $res/$t.log | head -30 | tee -a "$summary"
done
# Kernel timing reports (DISABLED_ tests that only print): WW_TIMING="binary:filter ...".
for spec in ${WW_TIMING:-}; do
  timeout 120 build/tests/${spec%%:*} --gtest_also_run_disabled_tests --gtest_filter="${spec#*:}" > $res/timing_${spec%%:*}.log 2>&1
  say "timing ${spec}: rc $?"; grep -vE "^\[|^$|^Note" $res/timing_${spec%%:*}.log | head -40 | tee -a "$summary"
done

ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
# Kernel durations of one program, summed per kernel name (top 25), as CSV + a summary table.
profile() {
  local name=$1 count=$2; shift 2
  [ -n "$ncu_bin" ] || { say "profile $name: no ncu"; return; }
  timeout ${WW_NCU_TIMEOUT:-150} "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv \
    --print-units base --launch-count "$count" "$@" > $res/ncu_$name.csv 2> $res/ncu_$name.err
  say "profile $name: rc $?"
  python3 scripts/gpu/ncu_summary.py $res/ncu_$name.csv | tee -a "$summary"
}

gpt2_train() {  # steps, extra args
  local steps=$1; shift
  local g=/tmp/ww-gpt2; rm -rf $g; mkdir -p $g
  build/wattwise train --model.arch gpt2 --model.preset small --model.tokenizer $data/tokenizers/gpt2 \
    --data.path $data/tinyshakespeare/input.txt --data.block_size 1024 --train.batch_size 16 --train.tokens_per_step 16384 \
    --train.precision bf16 --train.lr 6e-4 --train.schedule cosine --train.warmup_steps 1 --train.max_steps $steps \
    --train.weight_decay 0.1 --data.cache_dir $g/cache --run.device cuda --run.output_dir $g/runs --run.progress lines "$@"
}

if [ "${WW_GPT2:-1}" = 1 ]; then
  timeout 120 bash -c "$(declare -f gpt2_train); data=$data; gpt2_train 30" > $res/gpt2_ours.log 2>&1
  say "gpt2 ours (30 steps): rc $?"; grep -E "tokens/s|energy" $res/gpt2_ours.log | tail -4 | tee -a "$summary"
  profile gpt2 ${WW_GPT2_KERNELS:-2500} bash -c "$(declare -f gpt2_train); data=$data; gpt2_train 3"
fi
if [ "${WW_PROFILE_BENCH:-1}" = 1 ]; then
  for c in ${WW_BENCH_CASES:-distilbert-train-bf16 bert-infer-fp16-b1}; do
    timeout 60 build/wattwise bench --case $c --device cuda > $res/bench_$c.log 2>&1
    say "bench $c: rc $?"; tail -3 $res/bench_$c.log | tee -a "$summary"
  done
  profile distil_train 1500 build/wattwise bench --case distilbert-train-bf16 --device cuda --steps 2 --warmup 1 --min-seconds 0
  profile bert_b1 800 build/wattwise bench --case bert-infer-fp16-b1 --device cuda --steps 3 --warmup 1 --min-seconds 0
fi

w=/tmp/ww-sweep; rm -rf $w; mkdir -p $w
if [ "${WW_SWEEP:-1}" = 1 ]; then
  timeout 120 build/wattwise train --model.arch bert --model.preset base --model.tokenizer $data/tokenizers/bert-base-uncased \
    --data.path $data/glue/SST-2 --data.max_length 128 --data.max_train_examples 24000 --train.epochs 1 \
    --train.batch_size 32 --train.lr 1e-4 --train.warmup_ratio 0.1 --train.precision bf16 --run.device cuda \
    --run.output_dir $w/runs --run.name bert_base_sst2 --run.progress lines > $res/sweep_train.log 2>&1
  say "train for sweep: rc $? $(grep -E 'eval at|training energy' $res/sweep_train.log | tail -2 | tr '\n' ' ')"
  model=$(ls -d $w/runs/*bert_base_sst2/best_model 2>/dev/null | head -1)
  if [ -n "$model" ]; then
    timeout 200 build/wattwise sweep --model "$model" --data $data/glue/SST-2 --split dev --device cuda \
      --precisions fp32 fp16 int8-weight fp8 --seq-lens 128 64 32 --attention fused reference --batch-sizes 32 \
      --skip-failed --repeats 3 --warmup 1 --runs-dir $w/sweeps --name bert_base_sweep > $res/sweep.log 2>&1
    say "sweep: rc $?"
    sw=$(ls -d $w/sweeps/*bert_base_sweep 2>/dev/null | head -1)
    [ -n "$sw" ] && cp -r "$sw" $res/sweep && cp "$sw/pareto.csv" "$OUT/pareto.csv" && cp "$sw/report.html" "$OUT/report.html"
    tail -40 $res/sweep.log >> "$summary"
  fi
fi
say "total: $(( $(date +%s) - start )) s"
