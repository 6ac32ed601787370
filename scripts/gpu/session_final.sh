#!/usr/bin/env bash
# One GPU call for the third session's new work, each step under its own time limit so the results
# always come back (as $OUT/results.tgz plus $OUT/summary.txt; the device returns at most 8 files):
#   1. build wattwise and the new CUDA tests; run them (GPT-2 model, int8/fp8 quantization);
#   2. issue 7: a BERT-base-shaped classifier trained briefly from scratch on SST-2 (bf16), then
#      `wattwise sweep` over precision x max length x attention kernel on SST-2 dev, with report.html;
#   3. issue 8: GPT-2 124M training throughput, 16 x 1024 tokens, bf16: wattwise vs PyTorch eager.
# Carry .deps and .gpu-carry (data/tokenizers/{bert-base-uncased,gpt2}, data/glue/SST-2,
# data/tinyshakespeare).
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
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > $res/build.log 2>&1 &&
  cmake --build build -j 16 --target wattwise ${WW_TEST_TARGETS:-test_cuda_gpt2 test_cuda_quantized} >> $res/build.log 2>&1 ||
  { grep -E "error" -A3 $res/build.log | head -40; exit 1; }
say "build: $(( $(date +%s) - start )) s"

for t in ${WW_TEST_TARGETS:-test_cuda_gpt2 test_cuda_quantized}; do
  timeout 120 build/tests/$t > $res/$t.log 2>&1; rc=$?
  say "$t: rc $rc, $(grep -cE '^\[       OK' $res/$t.log) ok, $(grep -cE '^\[  FAILED' $res/$t.log) failed lines"
  grep -E "^\[  FAILED|Failure|error:|Expected|Which is|actual" $res/$t.log | head -20 | tee -a "$summary"
done

w=/tmp/ww-sweep; rm -rf $w; mkdir -p $w
if [ "${WW_SWEEP:-1}" = 1 ]; then
  timeout 120 build/wattwise train --model.arch bert --model.preset base --model.tokenizer $data/tokenizers/bert-base-uncased \
    --data.path $data/glue/SST-2 --data.max_length 128 --data.max_train_examples ${WW_SWEEP_TRAIN:-24000} --train.epochs 1 \
    --train.batch_size 32 --train.lr 1e-4 --train.warmup_ratio 0.1 --train.precision bf16 --run.device cuda \
    --run.output_dir $w/runs --run.name bert_base_sst2 --run.progress lines > $res/sweep_train.log 2>&1
  say "train for sweep: rc $? $(grep -E 'eval at|training energy' $res/sweep_train.log | tail -2 | tr '\n' ' ')"
  model=$(ls -d $w/runs/*bert_base_sst2/best_model 2>/dev/null | head -1)
  if [ -n "$model" ]; then
    timeout 150 build/wattwise sweep --model "$model" --data $data/glue/SST-2 --split dev --device cuda \
      --precisions fp32 fp16 int8-weight fp8 --seq-lens 128 64 32 --attention fused reference --batch-sizes 32 \
      --skip-failed --repeats 3 --warmup 1 --runs-dir $w/sweeps --name bert_base_sweep > $res/sweep.log 2>&1
    say "sweep: rc $?"
    sw=$(ls -d $w/sweeps/*bert_base_sweep 2>/dev/null | head -1)
    [ -n "$sw" ] && cp -r "$sw" $res/sweep && cp "$sw/pareto.csv" "$OUT/pareto.csv" && cp "$sw/report.html" "$OUT/report.html"
    tail -40 $res/sweep.log >> "$summary"
  fi
fi

if [ "${WW_GPT2:-1}" = 1 ]; then
  g=/tmp/ww-gpt2; rm -rf $g; mkdir -p $g
  timeout 120 build/wattwise train --model.arch gpt2 --model.preset small --model.tokenizer $data/tokenizers/gpt2 \
    --data.path $data/tinyshakespeare/input.txt --data.block_size 1024 --train.batch_size 16 --train.tokens_per_step 16384 \
    --train.precision bf16 --train.lr 6e-4 --train.schedule cosine --train.warmup_steps 5 --train.max_steps ${WW_GPT2_STEPS:-30} \
    --train.weight_decay 0.1 --data.cache_dir $g/cache --run.device cuda --run.output_dir $g/runs --run.progress lines > $res/gpt2_ours.log 2>&1
  say "gpt2 ours: rc $?"; tail -6 $res/gpt2_ours.log | tee -a "$summary"
  cp $g/runs/*/metrics.json $res/gpt2_ours_metrics.json 2>/dev/null
  python3 -c "
import json; m=json.load(open('$res/gpt2_ours_metrics.json')); t=m.get('train',{}); e=m.get('execution',{})
print('gpt2 ours train:', {k:t.get(k) for k in ('steps','tokens','seconds','tokens_per_s','samples_per_s')}, 'peak', e.get('peak_memory_bytes'))
print('gpt2 ours energy training:', {k:(m['energy'].get('phases',{}).get('training') or {}).get(k) for k in ('energy_j','gpu_j','duration_s')})
" 2>&1 | tee -a "$summary"
  # The PyTorch peer of `wattwise bench --case gpt2-train-bf16` (random ids, constant lr; the harness
  # runs both sides: bench/run_harness.py --cases gpt2-train-bf16).
  timeout 120 python3 bench/peer_pytorch.py --arch gpt2 --task train --preset small --batch 16 --seq-len 1024 \
    --precision bf16 --mode eager --steps ${WW_GPT2_STEPS:-30} --warmup 5 --json $res/gpt2_eager.json > $res/gpt2_eager.log 2>&1
  say "gpt2 eager: rc $?"; python3 -c "
import json; r=json.load(open('$res/gpt2_eager.json')); print('gpt2 eager:', {k:r[k] for k in ('tokens_per_s','energy_j','tokens','peak_memory_bytes','final_loss')})" 2>&1 | tee -a "$summary"
fi
if [ "${WW_BENCH:-1}" = 1 ]; then
  # Inference peak memory now that an inference-only model holds no gradient buffer (issue 6).
  for c in bert-infer-fp16-b32; do
    timeout 60 build/wattwise bench --case $c --device cuda > $res/bench_$c.log 2>&1
    say "bench $c: rc $?"; tail -4 $res/bench_$c.log | tee -a "$summary"
  done
fi
say "total: $(( $(date +%s) - start )) s"
