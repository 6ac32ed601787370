#!/usr/bin/env bash
# GPU-machine call for the CUDA kernels: build with CUDA, run every cuda-labelled test (each kernel
# against its CPU reference), then end to end: the tiny parity fixtures' logits through
# `wattwise predict --device cuda` against `--device cpu`, and a short SST-2 training run on the GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
source scripts/gpu/setup-deps.sh
data=$PWD/.gpu-carry/data
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > "$OUT/build.log" 2>&1 &&
  cmake --build build -j 16 >> "$OUT/build.log" 2>&1 || { grep -E "error" "$OUT/build.log" | head -30; exit 1; }
echo "== cuda tests"
(cd build && ctest -L cuda -j 4 --output-on-failure --timeout 300 > "$OUT/ctest_cuda.log" 2>&1)
grep -E "tests passed|Failed|Skipped" "$OUT/ctest_cuda.log" | head -40
echo "== predict on cuda vs cpu"
tok=$data/tokenizers/bert-base-uncased
w=/tmp/ww-e2e; rm -rf $w; mkdir -p $w
build/wattwise init-model --arch bert --preset mini --tokenizer $tok -o $w/m --seed 3 2>/dev/null
head -300 $data/glue/SST-2/dev.tsv > $w/dev.tsv
for d in cpu cuda; do
  build/wattwise predict --model $w/m --input $w/dev.tsv --output $w/pred_$d.jsonl --device $d --runs-dir $w/runs 2>&1 | tail -2
done
python3 - $w <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l)["logits"] for l in open(f"{w}/pred_cpu.jsonl")]
b = [json.loads(l)["logits"] for l in open(f"{w}/pred_cuda.jsonl")]
print("predict cuda vs cpu: %d examples, max |logit diff| %.2e" % (len(a), max(abs(x - y) for p, q in zip(a, b) for x, y in zip(p, q))))
PY
echo "== train on cuda (tiny BERT, SST-2, 300 steps)"
build/wattwise train --data.path $data/glue/SST-2 --model.tokenizer $tok --model.preset tiny --data.max_length 64 \
  --train.max_steps 300 --train.lr 1e-3 --train.warmup_ratio 0.1 --run.device cuda --run.progress lines \
  --run.output_dir $w/runs --train.eval_every 300 2>&1 | tail -6
