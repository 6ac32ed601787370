#!/usr/bin/env bash
# GPU-machine call for issues 6 and 8: build wattwise with CUDA, then the side-by-side harness
# (bench/run_harness.py): wattwise, PyTorch eager and torch.compile alternately, 3 rounds per case,
# on the cases of issues 6 and 8. Results (JSON + Markdown table) land in $OUT.
#
# Time: one case takes about 1.5–2.5 min on an H100 (3 rounds × 3 processes; each process imports
# torch or builds the model, warms up, then times at least 1 s; torch.compile's first compile of a
# case is most of it), so all 9 cases need more than one 10-minute call. The harness starts no new
# case that would end after WW_BENCH_BUDGET_S seconds (default: what is left of 9 minutes after the
# build; a case is estimated to take as long as the longest one so far) and lists those left out; run the script again with WW_BENCH_CASES set to them (a warm machine
# keeps the build and torch.compile's cache, so the second call skips both). Split that works:
#   WW_BENCH_CASES=distilbert-train-bf16,distilbert-train-fp16,distilbert-train-fp32,bert-train-bf16
#   WW_BENCH_CASES=bert-infer-fp16-b1,bert-infer-fp16-b32,bert-infer-fp16-b256,distilbert-infer-fp16-b32
#   WW_BENCH_CASES=gpt2-train-bf16   (issue 8)
# Other knobs: WW_BENCH_ROUNDS (3), WW_BENCH_MIN_SECONDS (1), WW_BENCH_ARGS (extra harness flags,
# e.g. "--no-compile" or "--quick").
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
start=$(date +%s)
source scripts/gpu/setup-deps.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON > "$OUT/build.log" 2>&1 &&
  cmake --build build -j 16 --target wattwise >> "$OUT/build.log" 2>&1 ||
  { grep -E "error" -A3 "$OUT/build.log" | head -60; exit 1; }
built=$(( $(date +%s) - start ))
echo "build: $built s"
budget=${WW_BENCH_BUDGET_S:-$(( 540 - built > 60 ? 540 - built : 60 ))}
python3 bench/run_harness.py --wattwise build/wattwise --out "$OUT" --device cuda \
  --cases "${WW_BENCH_CASES:-all}" --rounds "${WW_BENCH_ROUNDS:-3}" --min-seconds "${WW_BENCH_MIN_SECONDS:-1}" \
  --budget-s "$budget" ${WW_BENCH_ARGS:-} 2> "$OUT/harness.log"
rc=$?
tail -5 "$OUT/harness.log"
echo "total: $(( $(date +%s) - start )) s"
exit $rc
