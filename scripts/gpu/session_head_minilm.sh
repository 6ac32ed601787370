#!/usr/bin/env bash
# One GPU call after the LM-head padding and the MiniLM bench case:
#   1. build wattwise and ops_linear_test, run the test;
#   2. bench/cuda/lm_head_gemm.cu (standalone nvcc + cuBLASLt): GPT-2's three head GEMMs with the
#      vocabulary as is, with padded logit rows and with a padded vocabulary, timed and then under
#      Nsight Compute for the kernel names;
#   3. the harness on minilm-train-bf16 (ours and PyTorch eager) and one profiled step of it;
#   4. a carried checkpoint (.gpu-carry/minilm) kept in build/carry/ for a following
#      WW_TASK=imdb call of scripts/gpu/session_minilm.sh on the still-warm machine.
# Carry .deps and .gpu-carry/minilm. Results: $OUT/summary.txt and the logs beside it.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
deadline=$(( start + ${WW_DEADLINE_S:-480} ))
left() { echo $(( deadline - $(date +%s) )); }
[ -f .gpu-carry/minilm/model.safetensors ] && keep_minilm && say "kept the checkpoint in build/carry/minilm"
# The standalone GEMM benchmark builds in seconds: run it while wattwise compiles.
nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a bench/cuda/lm_head_gemm.cu -lcublasLt -o /tmp/lm_head_gemm \
  > $OUT/lm_head_build.log 2>&1 && /tmp/lm_head_gemm 20 > $OUT/lm_head_gemm.md 2>&1
say "lm_head_gemm: rc $?"; cat $OUT/lm_head_gemm.md | tee -a "$summary"
"$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base /tmp/lm_head_gemm 1 \
  > $OUT/ncu_lm_head.csv 2> $OUT/ncu_lm_head.err
python3 - $OUT/ncu_lm_head.csv <<'PY' | tee -a "$summary"
import csv, io, sys
text = open(sys.argv[1], errors="replace").read(); text = text[text.find('"ID"'):]
for row in csv.DictReader(io.StringIO(text)):
    if row.get("Metric Name") == "gpu__time_duration.sum":
        print(f'{float(row["Metric Value"]) / 1e6:8.3f} ms  {row["Kernel Name"][:110]}')
PY
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON > $OUT/build.log 2>&1 &&
  cmake --build build -j 16 --target wattwise ops_linear_test >> $OUT/build.log 2>&1 ||
  { grep -E "error" -A3 $OUT/build.log | head -40 | tee -a "$summary"; exit 1; }
say "build: $(( $(date +%s) - start )) s"
timeout 120 build/tests/ops_linear_test > $OUT/ops_linear_test.log 2>&1
say "ops_linear_test: rc $?, $(grep -cE '^\[       OK' $OUT/ops_linear_test.log) ok"
grep -E "^\[  FAILED|Failure" -A4 $OUT/ops_linear_test.log | head -30 | tee -a "$summary"
mkdir -p $OUT/minilm
timeout $(( $(left) - 40 )) python3 bench/run_harness.py --wattwise build/wattwise --out $OUT/minilm --device cuda \
  --cases minilm-train-bf16 --rounds 3 --min-seconds 2 --no-compile --budget-s $(( $(left) - 60 )) 2> $OUT/minilm/harness.log
say "harness minilm-train-bf16: rc $? at $(( $(date +%s) - start )) s"
cat $OUT/minilm/bench_*.md 2>/dev/null | tee -a "$summary"
if [ $(left) -gt 30 ]; then
  timeout $(( $(left) - 5 )) "$ncu_bin" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
    --launch-count ${WW_MINILM_KERNELS:-700} build/wattwise bench --case minilm-train-bf16 --device cuda --steps 1 --warmup 0 \
    --min-seconds 0 > $OUT/ncu_minilm.csv 2> $OUT/ncu_minilm.err
  say "profile minilm step: rc $?"
  python3 scripts/gpu/ncu_summary.py $OUT/ncu_minilm.csv --top 30 | tee -a "$summary"
fi
say "total: $(( $(date +%s) - start )) s"
