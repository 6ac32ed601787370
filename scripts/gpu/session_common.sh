#!/usr/bin/env bash
# Sourced by the GPU session scripts: the preamble they share. Leaves the shell in the repository
# root with the carried Debian packages unpacked (setup-deps.sh), $OUT and $summary set, the GPU's
# name, driver, max SM clock and power limit logged, $start set for elapsed times and $ncu_bin to
# Nsight Compute.
#   source "$(dirname "$0")/session_common.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
summary=$OUT/summary.txt
say() { echo "$*" | tee -a "$summary"; }
source scripts/gpu/setup-deps.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee -a "$summary"
start=$(date +%s)
# Nsight Compute, for the profile functions below (on PATH or in its default install folder).
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)

# The MiniLM checkpoint travels in .gpu-carry/minilm; build/carry keeps it on a warm machine for a
# chained call that carries something else. Sets $model; fails when neither has it.
keep_minilm() {
  model=build/carry/minilm
  if [ -f .gpu-carry/minilm/model.safetensors ]; then
    rm -rf "$model"; mkdir -p build/carry; cp -r .gpu-carry/minilm "$model"
  fi
  [ -f "$model/model.safetensors" ] || { say "no checkpoint: carry .gpu-carry/minilm (a fresh machine lost build/carry)"; return 3; }
}

# Configure a Release CUDA build and build wattwise plus the named targets; logs in $OUT/build.log.
build_wattwise() {  # extra targets...
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$PWD/.gpu-carry/data" \
      > "$OUT/build.log" 2>&1 &&
    cmake --build build -j 16 --target wattwise "$@" >> "$OUT/build.log" 2>&1 ||
    { grep -E "error" -A3 "$OUT/build.log" | head -40 | tee -a "$summary"; return 1; }
  say "build: $(( $(date +%s) - start )) s"
}

# Data that travels packed to fit 64 MiB beside the checkpoint (.gpu-carry/packed/NAME.tar.xz, made
# with tar -C .gpu-carry/data -cJf .gpu-carry/packed/glue.tar.xz glue) is unpacked into
# .gpu-carry/data, where the scripts look.
unpack_data() {
  local f
  for f in .gpu-carry/packed/*.tar.xz; do
    [ -f "$f" ] || continue
    mkdir -p .gpu-carry/data && tar -C .gpu-carry/data -xJf "$f" && say "unpacked $f"
  done
}

# Run the test programs named (from WW_TEST_DIR, default build/tests), each with a timeout; one
# summary line per program and its failure lines. Logs in $OUT/<name>.log.
run_tests() {  # names...
  local t rc
  for t in "$@"; do
    timeout ${WW_TEST_TIMEOUT:-180} ${WW_TEST_DIR:-build/tests}/$t > $OUT/$t.log 2>&1; rc=$?
    say "$t: rc $rc, $(grep -cE '^\[       OK' $OUT/$t.log) ok, $(grep -cE '^\[  FAILED' $OUT/$t.log) failed lines"
    grep -E "^\[  FAILED|Failure|error:|Expected|Which is|actual" $OUT/$t.log | head -20 | tee -a "$summary"
  done
}

# Where GPT-2 124M's training step goes: kernel durations under Nsight Compute (clocks untouched)
# (WW_BIN, default build/wattwise) for WW_GPT2_PROFILE_COUNT kernels after skipping the first WW_GPT2_PROFILE_SKIP (set-up and the
# first steps), summed per kernel name into the summary. Skipped when fewer than 60 s are left.
profile_gpt2_step() {  # seconds-left
  local left=$1
  [ "$left" -gt 60 ] || { say "profile gpt2: no time left"; return 0; }
  local data=$PWD/.gpu-carry/data g=/tmp/ww-gpt2-prof
  rm -rf $g; mkdir -p $g
  timeout $(( left + 20 )) "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv \
    --print-units base --launch-skip ${WW_GPT2_PROFILE_SKIP:-1500} --launch-count ${WW_GPT2_PROFILE_COUNT:-600} \
    ${WW_BIN:-build/wattwise} train --model.arch gpt2 --model.preset small --model.tokenizer $data/tokenizers/gpt2 \
    --data.path $data/tinyshakespeare/input.txt --data.block_size 1024 --train.batch_size 16 --train.tokens_per_step 16384 \
    --train.precision bf16 --train.lr 6e-4 --train.warmup_steps 1 --train.max_steps 12 --train.weight_decay 0.1 \
    --data.cache_dir $g/cache --run.device cuda --run.output_dir $g/runs --run.progress lines > $OUT/ncu_gpt2.csv 2> $OUT/ncu_gpt2.err
  say "profile gpt2: rc $?"
  python3 scripts/gpu/ncu_summary.py $OUT/ncu_gpt2.csv --top 30 | tee -a "$summary"
}

# What limits the fused attention kernels: Nsight Compute's speed-of-light, occupancy, warp-state
# and compute-workload sections for the mma forward, dK/dV and dQ kernels of one GPT-2 124M training
# step (causal, T = 1024, dropout 0.1: the second step's 36 launches), averaged per kernel.
# Skipped when fewer than 60 s are left.
profile_attention_kernels() {  # seconds-left
  local left=$1
  [ "$left" -gt 60 ] || { say "profile attention: no time left"; return 0; }
  timeout $(( left + 10 )) "$ncu_bin" --clock-control none --csv --page details \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section ComputeWorkloadAnalysis \
    -k regex:'flash_(forward|dkdv|dq)_mma' --launch-skip 36 --launch-count 36 \
    build/wattwise bench --case gpt2-train-bf16 --device cuda --steps 2 --warmup 1 --min-seconds 0 \
    > $OUT/ncu_attention.csv 2> $OUT/ncu_attention.err
  say "profile attention: rc $?"
  python3 scripts/gpu/ncu_summary.py $OUT/ncu_attention.csv --details | tee -a "$summary"
}

# Before/after on one GPU: `wattwise bench` for each case of WW_BENCH_CASES (default GPT-2,
# DistilBERT and BERT-base training, bf16), ours (WW_NEW_BIN, default build/wattwise) and the
# baseline binary (WW_BASE_BIN, default .gpu-carry/base/wattwise from scripts/gpu/build_baseline.sh)
# alternating, `rounds` rounds; one summary line per run, every run appended to $OUT/bench.jsonl.
bench_before_after() {  # rounds
  local new=${WW_NEW_BIN:-build/wattwise} base=${WW_BASE_BIN:-.gpu-carry/base/wattwise} round c tool name
  [ -x "$base" ] && say "baseline: $(cat "$(dirname "$base")/COMMIT" 2>/dev/null)"
  for round in $(seq 1 "${1:-2}"); do
    for c in ${WW_BENCH_CASES:-gpt2-train-bf16 distilbert-train-bf16 bert-train-bf16}; do
      for tool in $new $base; do
        [ -x "$tool" ] || continue
        name=$([ "$tool" = "$base" ] && echo base || echo new)
        [ -f "$(dirname "$tool")/COMMIT" ] && name=$name-$(cut -c1-7 "$(dirname "$tool")/COMMIT")
        timeout 120 $tool bench --case $c --device cuda --min-seconds 2 --json $OUT/bench.jsonl > $OUT/bench_${c}_$name.log 2>&1
        say "round $round $c $name: rc $? $(grep -E '^wattwise' $OUT/bench_${c}_$name.log | tr -s ' ')"
      done
    done
  done
}

# A standalone GPU probe of bench/cuda (nvcc + cuBLASLt only, built in seconds): NAME.cu built
# into /tmp/NAME and run with its arguments; its Markdown table into $OUT/NAME.md and the summary
# (rows matching WW_PROBE_HIDE, e.g. "candidate", left out of the summary only).
run_cuda_probe() {  # name args...
  local name=$1; shift
  nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a bench/cuda/$name.cu -lcublasLt -o /tmp/$name \
    > $OUT/${name}_build.log 2>&1 && timeout 120 /tmp/$name "$@" > $OUT/$name.md 2>&1
  say "$name: rc $?"
  grep -v "${WW_PROBE_HIDE:-^\$}" $OUT/$name.md | tee -a "$summary"
}

# A call brings back at most 8 files: everything in $OUT but the summary, the JSON lines and the
# harness's bench_*.json/.md goes into one $OUT/logs.tar.gz.
pack_outputs() {
  local keep='^(summary\.txt|bench\.jsonl|logs\.tar\.gz|bench_.*\.(json|md))$'
  (cd "$OUT" && tar -czf logs.tar.gz --remove-files $(ls | grep -Ev "$keep"))
}

# Where a bench case's training step goes: kernel durations under Nsight Compute (clocks untouched)
# for `count` kernels after skipping `skip` (initialisation and the warm-up step), summed per
# kernel name into the summary. Skipped when fewer than 60 s are left. WW_BIN: the wattwise binary
# (default build/wattwise). WW_NCU_CACHE=none keeps the caches warm between kernels (Nsight
# Compute flushes them by default, which inflates the small latency-bound kernels of batch-1
# inference, whose weights otherwise partly sit in L2 between graph replays).
profile_bench_case() {  # case skip count seconds-left
  local c=$1 skip=$2 count=$3 left=$4
  [ "$left" -gt 60 ] || { say "profile $c: no time left"; return 0; }
  timeout $(( left + 10 )) "$ncu_bin" --clock-control none --cache-control "${WW_NCU_CACHE:-all}" \
    --metrics gpu__time_duration.sum --csv --print-units base --launch-skip "$skip" --launch-count "$count" \
    ${WW_BIN:-build/wattwise} bench --case "$c" --device cuda --steps 4 --warmup 2 --min-seconds 0 > "$OUT/ncu_$c.csv" 2> "$OUT/ncu_$c.err"
  say "profile $c: rc $?"
  python3 scripts/gpu/ncu_summary.py "$OUT/ncu_$c.csv" --top 25 | tee -a "$summary"
}

# What limits one kernel of a bench case: Nsight Compute's speed-of-light, memory-workload,
# occupancy and launch sections for `count` launches of kernels matching `regex` after skipping
# `skip` of them (warm caches), averaged per kernel name into the summary. WW_BIN as above.
# Skipped when fewer than 60 s are left.
profile_kernel_details() {  # case regex skip count seconds-left
  local c=$1 regex=$2 skip=$3 count=$4 left=$5
  [ "$left" -gt 60 ] || { say "details $c: no time left"; return 0; }
  timeout $(( left + 10 )) "$ncu_bin" --clock-control none --cache-control none --csv --page details \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats -k "regex:$regex" --launch-skip "$skip" --launch-count "$count" \
    ${WW_BIN:-build/wattwise} bench --case "$c" --device cuda --steps 4 --warmup 2 --min-seconds 0 \
    > "$OUT/ncu_details_$c.csv" 2> "$OUT/ncu_details_$c.err"
  say "details $c ($regex): rc $?"
  python3 scripts/gpu/ncu_summary.py "$OUT/ncu_details_$c.csv" --details | tee -a "$summary"
}
