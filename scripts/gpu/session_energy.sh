#!/usr/bin/env bash
# Second GPU-machine call: the energy validation (sampler cost now measured on the sampler thread)
# and the tokenizer parity test with the machine's tokenizers 0.23.2. Logs go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
source scripts/gpu/setup-deps.sh
data=$PWD/.gpu-carry/data
export PYTHONUNBUFFERED=1
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > "$OUT/build.log" 2>&1 &&
  cmake --build build -j 16 >> "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
(cd build && ctest -R "tokenizer_parity|measure" --output-on-failure > "$OUT/ctest.log" 2>&1); grep -E "tests passed|note:|OK:|FAIL" "$OUT/ctest.log"
WATTWISE=$PWD/build/wattwise bash scripts/gpu/validate_energy.sh 2>&1 | tee "$OUT/energy_validation.log" | tail -12
