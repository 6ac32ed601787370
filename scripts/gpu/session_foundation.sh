#!/usr/bin/env bash
# One GPU-machine call for the engine foundation and energy issues: build (CUDA on), the CPU test
# suite, full-size parity with transformers (bert-base, distilbert-base random init), tokenizer
# throughput against HF tokenizers, CPU inference on 2 cores against PyTorch, and the energy
# validation. Logs go to $OUT. Needs .deps (Debian packages) and .gpu-carry/data carried.
#   run: bash scripts/gpu/session_foundation.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
source scripts/gpu/setup-deps.sh
data=$PWD/.gpu-carry/data
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,memory.total --format=csv
  lscpu | grep -E "Model name|^CPU\(s\)"
  python3 -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > "$OUT/build.log" 2>&1 &&
  cmake --build build -j 16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build ok: $(build/wattwise --version)"

echo "== ctest (CPU suite; fuzzing and the long learning run left to CI)"
(cd build && ctest -j 8 -E "fuzz|learn_" --timeout 600 > "$OUT/ctest.log" 2>&1); tail -15 "$OUT/ctest.log"

echo "== full-size parity with transformers (random init)"
python3 scripts/make_parity_fixtures.py --out /tmp/full --size base > "$OUT/parity_full.log" 2>&1
WW_PARITY_FIXTURES=/tmp/full/bert_base,/tmp/full/distilbert_base \
  build/tests/test_models --gtest_filter='ParityExternal.*' 2>&1 | tee -a "$OUT/parity_full.log" | grep -E "base:|OK|FAILED|Failure"

echo "== tokenizer throughput (one thread) vs HF tokenizers"
python3 scripts/tokenizer_parity.py --wattwise build/wattwise --data "$data" --bench 2>&1 | tee "$OUT/tokenizer_bench.log" | tail -8

echo "== CPU inference, batch 32, length 128, 2 cores: wattwise vs PyTorch eager (alternating)"
for round in 1 2; do
  OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 taskset -c 0,1 build/bench/bench_inference_cpu \
    --benchmark_min_time=3 --benchmark_repetitions=1 2>&1 | grep -E "Inference" | tee -a "$OUT/cpu_inference.log"
  taskset -c 0,1 python3 scripts/bench_cpu_inference_torch.py --threads 2 2>&1 | grep ms/example | tee -a "$OUT/cpu_inference.log"
done

echo "== energy validation"
WATTWISE=$PWD/build/wattwise bash scripts/gpu/validate_energy.sh 2>&1 | tee "$OUT/energy_validation.log" | tail -20
