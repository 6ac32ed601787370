#!/usr/bin/env bash
# One GPU call for issue 8's convergence check and the profiles that guide the next kernel work:
#   1. build wattwise (+ WW_TEST_TARGETS) and run those CUDA tests;
#   2. GPT-2 124M from scratch on tiny shakespeare, 16 x 1024 tokens, bf16, warmup + cosine,
#      WW_GPT2_STEPS (500) steps with an evaluation every 50, exporting the plan; then
#      bench/gpt2_replay_pytorch.py replays the same weights and windows in transformers and
#      compares the validation-loss curves (tolerance 2%);
#   3. kernel durations under Nsight Compute (clocks untouched) for one GPT-2 training step and
#      for distilbert-train-bf16, summed per kernel name.
# Carry .deps and .gpu-carry (data/tokenizers/gpt2, data/tinyshakespeare). Results under $OUT:
# summary.txt, gpt2_replay.json, gpt2_metrics.json, logs.tgz.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
res=/tmp/ww-res; rm -rf $res; mkdir -p $res
summary=$OUT/summary.txt
say() { echo "$*" | tee -a "$summary"; }
finish() { tar czf "$OUT/logs.tgz" -C $res . 2>/dev/null; }
trap finish EXIT
source scripts/gpu/setup-deps.sh
data=$PWD/.gpu-carry/data
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee -a "$summary"
start=$(date +%s)
deadline=$(( start + ${WW_DEADLINE_S:-560} ))
left() { echo $(( deadline - $(date +%s) )); }
targets=${WW_TEST_TARGETS:-}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > $res/build.log 2>&1 &&
  cmake --build build -j 16 --target wattwise $targets >> $res/build.log 2>&1 ||
  { grep -E "error" -A3 $res/build.log | head -40 | tee -a "$summary"; exit 1; }
say "build: $(( $(date +%s) - start )) s"
for t in $targets; do
  timeout 120 build/tests/$t > $res/$t.log 2>&1; rc=$?
  say "$t: rc $rc, $(grep -cE '^\[       OK' $res/$t.log) ok, $(grep -cE '^\[  FAILED' $res/$t.log) failed lines"
  grep -E "^\[  FAILED|Failure|error:|Expected|Which is|actual" $res/$t.log | head -20 | tee -a "$summary"
done

gpt2_train() {  # run-dir steps extra-args...
  local dir=$1 steps=$2; shift 2
  build/wattwise train --model.arch gpt2 --model.preset small --model.tokenizer $data/tokenizers/gpt2 \
    --data.path $data/tinyshakespeare/input.txt --data.block_size 1024 --train.batch_size 16 --train.tokens_per_step 16384 \
    --train.precision bf16 --train.lr 6e-4 --train.schedule cosine --train.warmup_steps 50 --train.max_steps $steps \
    --train.weight_decay 0.1 --data.cache_dir $dir/cache --run.device cuda --run.output_dir $dir/runs --run.progress lines "$@"
}

# 2. Convergence side by side.
if [ "${WW_GPT2_STEPS:-500}" -gt 0 ]; then
  g=/tmp/ww-gpt2-val; rm -rf $g; mkdir -p $g
  timeout $(( $(left) - 60 )) bash -c "$(declare -f gpt2_train); data=$data; gpt2_train $g ${WW_GPT2_STEPS:-500} \
    --train.eval_every 50 --data.max_eval_examples 64 --run.export_plan true --run.name gpt2_val" > $res/gpt2_val.log 2>&1
  say "gpt2 ${WW_GPT2_STEPS:-500} steps: rc $? at $(( $(date +%s) - start )) s"
  grep -E "eval at|tokens/s|energy" $res/gpt2_val.log | tail -14 | tee -a "$summary"
  run=$(ls -d $g/runs/*gpt2_val 2>/dev/null | head -1)
  if [ -n "$run" ]; then
    cp $run/metrics.json $OUT/gpt2_metrics.json
    timeout $(( $(left) - 20 )) python3 bench/gpt2_replay_pytorch.py $run --device cuda --out $OUT/gpt2_replay.json \
      > $res/gpt2_replay.log 2>&1
    say "gpt2 replay: rc $? at $(( $(date +%s) - start )) s"
    tail -16 $res/gpt2_replay.log | tee -a "$summary"
  fi
fi

# 3. Profiles, if the deadline leaves time.
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
profile() {  # name skip count command...
  local name=$1 skip=$2 count=$3; shift 3
  [ $(left) -gt 40 ] || { say "profile $name: no time left"; return; }
  timeout $(( $(left) - 5 )) "$ncu_bin" --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base \
    --launch-skip "$skip" --launch-count "$count" "$@" > $res/ncu_$name.csv 2> $res/ncu_$name.err
  say "profile $name: rc $?"
  python3 scripts/gpu/ncu_summary.py $res/ncu_$name.csv --top 30 | tee -a "$summary"
}
# One step each (--warmup 0: the step that also captures the CUDA graph; kernel durations are the same).
profile distil_train 0 ${WW_DISTIL_KERNELS:-900} build/wattwise bench --case distilbert-train-bf16 --device cuda \
  --steps 1 --warmup 0 --min-seconds 0
profile gpt2 0 ${WW_GPT2_KERNELS:-1600} build/wattwise bench --case gpt2-train-bf16 --device cuda \
  --steps 1 --warmup 0 --min-seconds 0
say "total: $(( $(date +%s) - start )) s"
