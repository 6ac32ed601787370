#!/usr/bin/env bash
# GPU-machine call for issue 5's second half: build with CUDA, run every cuda-labelled test
# (kernels in f32/f16/bf16, fused attention, whole-model precision/attention/checkpointing checks,
# the 200-step loss-curve comparison), then end to end:
#   - predict in bf16 and fp16 against fp32 on the GPU (same checkpoint);
#   - peak GPU memory of DistilBERT-base training at batch 32, length 256 with and without
#     activation checkpointing (f32 and bf16);
#   - optional (WW_IMDB=1): DistilBERT-shaped model from scratch on IMDB at max length 256, bf16.
# Everything lands under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ww-out}; mkdir -p "$OUT"
source scripts/gpu/setup-deps.sh
data=$PWD/.gpu-carry/data
tok=$data/tokenizers/bert-base-uncased
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$OUT/gpu.txt"
start=$(date +%s)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DWW_CUDA=ON -DWW_SHARED_DATA="$data" > "$OUT/build.log" 2>&1 &&
  cmake --build build -j 16 >> "$OUT/build.log" 2>&1 || { grep -E "error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

if [ "${WW_SKIP_TESTS:-0}" != 1 ]; then
  if [ "${WW_CTEST:-1}" = 1 ]; then
    echo "== cuda tests"
    (cd build && ctest -L cuda -j 2 --output-on-failure --timeout 300 > "$OUT/ctest_cuda.log" 2>&1)
    grep -E "tests passed|Failed|\*\*\*|Skipped" "$OUT/ctest_cuda.log" | head -40
  fi
  build/tests/test_cuda_model > "$OUT/test_cuda_model.log" 2>&1
  grep -E "error\)|mean loss|skipped steps|OK|FAILED" "$OUT/test_cuda_model.log" | head -40
  build/tests/ops_attention_fused_test --gtest_also_run_disabled_tests --gtest_filter='*Timing*' > "$OUT/flash_timing.log" 2>&1
  grep -vE "^\[|^$" "$OUT/flash_timing.log" | head -20
fi

w=/tmp/ww-e2e; rm -rf $w; mkdir -p $w
echo "== predict bf16/fp16 vs fp32 on cuda"
build/wattwise init-model --arch bert --preset mini --tokenizer $tok -o $w/m --seed 3 2>/dev/null
head -800 $data/glue/SST-2/dev.tsv > $w/dev.tsv
for p in fp32 bf16 fp16; do
  for a in fused reference; do
    build/wattwise predict --model $w/m --input $w/dev.tsv --output $w/pred_${p}_$a.jsonl --device cuda \
      --precision $p --attention $a --runs-dir $w/runs 2>&1 | tail -1
  done
done
python3 - $w <<'PY'
import json, sys
w = sys.argv[1]
def load(n): return [json.loads(l) for l in open(f"{w}/pred_{n}.jsonl")]
ref = load("fp32_reference")
for n in ["fp32_fused", "bf16_fused", "bf16_reference", "fp16_fused", "fp16_reference"]:
    o = load(n)
    d = max(abs(x - y) for p, q in zip(o, ref) for x, y in zip(p["logits"], q["logits"]))
    agree = sum(p["label"] == q["label"] for p, q in zip(o, ref)) / len(ref)
    print(f"predict {n} vs fp32 reference: {len(ref)} examples, max |logit diff| {d:.2e}, same label {agree:.4f}")
PY

echo "== peak memory: DistilBERT-base, batch 32, length 256, 10 steps"
build/wattwise init-model --arch distilbert --preset base --tokenizer $tok -o $w/distil --seed 1 2>/dev/null
for p in fp32 bf16; do
  for c in none every sqrt; do
    build/wattwise train --model.path $w/distil --data.path $data/aclImdb.tar.gz --data.max_length 256 \
      --data.padding max --data.clean_html true --data.max_train_examples 1280 --data.eval_split "" \
      --train.max_steps 30 --train.batch_size 32 --train.precision $p --train.checkpointing $c \
      --run.device cuda --run.progress none --run.output_dir $w/mem --run.name mem_${p}_$c > $w/mem_${p}_$c.log 2>&1 ||
      tail -3 $w/mem_${p}_$c.log
  done
done
python3 - $w/mem <<'PY'
import json, sys, glob, os
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/*/metrics.json")):
    m = json.load(open(f)); t = m["train"]; e = m["execution"]
    rows[(e["precision"], e["checkpointing"])] = (e["peak_memory_bytes"], e["activation_bytes"], t["samples_per_s"])
for (p, c), (peak, act, sps) in sorted(rows.items()):
    base = rows.get((p, "none"), (peak,))[0]
    print(f"{p:5s} checkpointing {c:6s}: peak {peak/2**20:8.0f} MiB ({100*(1-peak/base):5.1f}% less), activations {act/2**20:7.0f} MiB, {sps:7.0f} samples/s")
PY

if [ "${WW_IMDB:-0}" = 1 ]; then
  # WW_IMDB_RUNS: space-separated lr:epochs:label_smoothing (default one run).
  for spec in ${WW_IMDB_RUNS:-1e-4:3:0}; do
    IFS=: read -r lr epochs ls <<< "$spec"
    echo "== DistilBERT-shaped from scratch on IMDB, length 256, bf16, lr $lr, $epochs epochs, label smoothing $ls"
    build/wattwise train --data.path $data/aclImdb.tar.gz --model.tokenizer $tok --model.arch distilbert \
      --model.preset base --data.max_length 256 --data.clean_html true --data.eval_split dev \
      --data.split_ratios 0.9,0.1,0 --data.test_split test \
      --train.epochs $epochs --train.batch_size 32 --train.lr $lr --train.warmup_ratio 0.1 \
      --train.weight_decay 0.01 --train.label_smoothing $ls --train.precision bf16 --run.device cuda \
      --run.progress lines --run.output_dir $w/imdb --run.name imdb_${lr}_${epochs}_${ls} 2>&1 | grep -v "^train:" | tail -8
  done
  mkdir -p "$OUT/imdb"; for f in $w/imdb/*/metrics.json; do cp "$f" "$OUT/imdb/$(basename $(dirname $f)).json"; done
fi
cp $w/mem/*/metrics.json "$OUT/" 2>/dev/null || true
echo "total: $(( $(date +%s) - start )) s"
